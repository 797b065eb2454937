"""Production-shaped synthetic data and the benchmark: everything that builds or measures a test bed,
never part of a backfill run.

    derive       derived beatmaps: a real .osu file with new CS/AR/OD/HP and a tempo (OsuTemplate)
    demo         the demo data set from the shipped maps (build_demo_database; `sr-backfill demo`)
    scale        the score generator at production scale (build_scaled_database; `sr-backfill synth`)
    bulkload     fast loading of Arrow batches (LOAD DATA LOCAL INFILE, index rebuilds)
    bench        the pieces of `sr-backfill bench`: throwaway databases, isolated runs, the floor
    relax_bench  the relax port against akatsuki-pp-py (`python -m testbed.relax_bench`)
    errors       this package's errors

Imports flow one way: testbed may import cluster, sr and conditions; none of them imports testbed.
"""
