"""`sr-backfill bench --live-load`: the backfill beside imitated live score submission (issue 13).

    sr-backfill bench --live-load [--rate 50] [--scores N] [--load-seconds 60] [--json FILE]
                      [--db PRIMARY --read-db REPLICA [--osu-dir DIR]]

1. a primary and a replica: by default a throwaway MariaDB pair on loopback (testbed.replica_pair, under
   the work directory, stopped at the end); or --db (the primary) with --read-db (its replica);
2. a synthetic data set on the primary (cluster.scale; reused when the primary's score tables hold rows,
   with --osu-dir), replicated; the generator's users (testbed.livebench.add_load_users);
3. a warm-up dry run (fills the SR cache, so both measured runs rate nothing and differ only in how they
   read and write); before every phase the bench waits until both servers have flushed their dirty pages
   and purged their undo history (testbed.livebench.settle: a bulk load or a rollback leaves minutes of
   both behind, which would be charged to whichever phase came next);
4. three phases at the same submission rate R (testbed.livebench.LoadGenerator; the replica's lag by a
   heartbeat of the bench's own, testbed.livebench.LagProbe), and a fourth for diagnosis:
     none         no backfill, for --load-seconds;
     dry          a dry run reading the replica: the backfill's reads, rating and evaluation, no writes
                  (on one host the raters compete with the servers for the CPUs, which no governor of
                  writes can change: this column shows that part);
     unthrottled  an --apply backfill as before issue 13: reads and writes on the primary, no governor,
                  batches of --batch-rows;
     governed     an --apply backfill with the defaults: reads from the replica, the governor with
                  max-lag 10 s, max-threads-running 25, chunk-time 0.5 s;
   the load runs from before the backfill starts until it ends; between the two backfills the first is
   rolled back (not measured) and the replica caught up.

Prints, per phase: submissions, p50/p99/max latency (ms; the worst 10-second p99 too), errors (1213
deadlocks, 1205 lock waits, others), the replica's max lag and the backfill's wall; then the targets
(governed p99 <= 1.5x the no-backfill p99, 0 errors, lag <= max-lag + 2 s) as met or not. --json FILE
writes the same figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

from cluster import db
from testbed import bench
from cluster.errors import ConfigError
from cluster.governor import DEFAULT_LIMITS, WriteLimits
from testbed.livebench import LagProbe, LoadGenerator, add_load_users, sample_users, settle
from cluster.pipeline import BackfillConfig
from testbed.replica_pair import ReplicaPair
from cluster.rollback import rollback_run
from testbed.scale import build_scaled_database
from sr.masking import mask_url

REPO = Path(__file__).resolve().parents[1]
MAPS = REPO / "data" / "maps"
LOAD_USERS = 200
ACHIEVEMENT_USERS = 1000
P99_FACTOR = 1.5
LAG_MARGIN = 2.0


def add_arguments(group) -> None:
    """The --live-load options (added to `sr-backfill bench`)."""
    group.add_argument("--live-load", action="store_true", help="measure the backfill beside imitated score "
                       "submission: no backfill, unthrottled, governed (docs/LIVE.md)")
    group.add_argument("--rate", type=float, default=50.0, help="--live-load: submissions per second (default 50)")
    group.add_argument("--load-seconds", type=float, default=60.0, help="--live-load: length of the no-backfill "
                       "phase (default 60)")
    group.add_argument("--read-db", help="--live-load with --db: the primary's replica (default: a throwaway "
                       "MariaDB primary and replica on loopback)")
    group.add_argument("--batch-rows", type=int, default=1000, help="--live-load: the unthrottled run's batch rows")
    group.add_argument("--max-write-rate", type=float, help="--live-load: the governed run's max-write-rate "
                       "(default: unlimited, as sr-backfill run)")
    group.add_argument("--chunk-time", type=float, help="--live-load: the governed run's chunk-time "
                       f"(default {DEFAULT_LIMITS.chunk_time:g}, as sr-backfill run)")
    group.add_argument("--split-cpus", action="store_true", help="--live-load on one host: the servers and the load "
                       "generator on CPU 0, the backfill and its Ray on the others, as on separate machines (Linux)")


def _caught_up(pair: ReplicaPair | None, probe: LagProbe, timeout: float = 600.0) -> None:
    if pair is not None:
        pair.wait_caught_up(timeout)
        return
    probe.reset()
    time.sleep(3)  # an external replica: wait until the probe sees it under a second behind
    deadline = time.monotonic() + timeout
    while probe.peak() > 1.0 or probe.unknown:
        if time.monotonic() > deadline:
            raise TimeoutError("the replica does not catch up")
        probe.reset()
        time.sleep(3)


def _split_cpus() -> tuple[set[int], set[int]]:
    """(CPU 0, the others) of the CPUs this process may use. Raises ConfigError with fewer than two."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise ConfigError("--split-cpus needs at least two CPUs")
    return {cpus[0]}, set(cpus[1:])


def _phase(name: str, url: str, probe: LagProbe, load: LoadGenerator, config: BackfillConfig | None,
           seconds: float, say, cpus: set[int] | None = None, servers: list[str] | None = None) -> dict:
    quiet = settle(servers or [url])
    say(f"bench --live-load: phase {name}" + (f" ({seconds:.0f} s of load)" if config is None else "")
        + f" (servers {'settled' if quiet['settled'] else 'NOT settled'} after {quiet['seconds']:.0f} s)")
    probe.reset()
    load.start()
    run = None
    if config is None:
        time.sleep(seconds)
    else:
        run = bench.run_isolated(config, cpus)
    result = load.stop()
    out = {"load": result.summary(), "max_lag_s": probe.peak(), "lag_unknown_probes": probe.unknown, "settle": quiet}
    if run is not None:
        governor = run.get("governor") or {}
        out["backfill"] = {"wall_s": run["seconds"]["total"], "grants_written": run["grants_written"],
                           "write_s": run["seconds"].get("write", 0.0),
                           "held_seconds": governor.get("held_seconds", {}),
                           "batch_sizes": governor.get("batch_sizes"), "status": run["status"]}
    return out


def measure(args: argparse.Namespace, say=print) -> dict:
    """Run the live-load benchmark described by `args` (see the module docstring); returns its figures."""
    if args.rate <= 0 or args.load_seconds <= 0:
        raise ConfigError("--rate and --load-seconds must be positive")
    if args.db and not args.read_db:
        raise ConfigError("--live-load with --db needs --read-db (the primary's replica)")
    tag = uuid.uuid4().hex[:8]
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="srb-live-"))
    work.mkdir(parents=True, exist_ok=True)
    pair = None
    split = _split_cpus() if args.split_cpus else None
    if split:
        os.sched_setaffinity(0, split[0])  # this process: the load generator and the lag probe
    try:
        if args.db:
            url, replica_url = args.db, args.read_db
        else:
            say("bench --live-load: starting a MariaDB primary and replica on loopback")
            pair = ReplicaPair(work / "pair", buffer_pool_mb=512, cpus=split[0] if split else None).start()
            name = f"srb_live_{tag}"
            url, replica_url = pair.create_database(name), pair.replica.url(name)
        result = {"database": mask_url(url), "replica": mask_url(replica_url), "rate": args.rate,
                  "throwaway_pair": pair is not None, "host_cpus": os.cpu_count(),
                  "split_cpus": {"servers_and_load": sorted(split[0]), "backfill": sorted(split[1])} if split else None}
        osu_dir = Path(args.osu_dir) if args.osu_dir else work / "osu"
        if not _score_rows(url):
            maps = args.maps or max(100, args.scores // 315)
            users = args.users or max(100, args.scores // 63)
            say(f"bench --live-load: building {args.scores:,} scores, {maps:,} maps, {users:,} users")
            build_scaled_database(url, osu_dir, MAPS, scores=args.scores, maps=maps, users=users, seed=args.seed,
                                  tmp_dir=work)
        elif args.osu_dir is None:
            raise ConfigError("--db holds scores already: pass --osu-dir with its .osu files")
        probe = LagProbe(url, replica_url).start()
        try:
            load_users, targets = add_load_users(url, LOAD_USERS), sample_users(url, ACHIEVEMENT_USERS)
            _caught_up(pair, probe)
            result["scores"] = _score_rows(url)
            servers = [url, replica_url]
            cache = work / "sr-cache"
            base = BackfillConfig(db_url=url, osu_location=str(osu_dir), workers=args.workers,
                                  shard_rows=args.shard_rows, engine=args.engine, progress=False,
                                  sr_cache=str(cache), read=args.read, read_url=replica_url)
            say("bench --live-load: warm-up dry run (fills the SR cache; not measured)")
            backfill_cpus = split[1] if split else None
            bench.run_isolated(replace(base, out=work / "warm-up.parquet", run_id=f"live-warm-{tag}"), backfill_cpus)

            def load() -> LoadGenerator:
                return LoadGenerator(url, args.rate, load_users, targets)

            phases = {"none": _phase("none", url, probe, load(), None, args.load_seconds, say, None, servers)}
            dry = replace(base, out=work / "dry.parquet", run_id=f"live-dry-{tag}")
            phases["dry"] = _phase("dry", url, probe, load(), dry, 0, say, backfill_cpus, servers)
            unthrottled = replace(base, apply=True, governed=False, read_url=None, write_batch_rows=args.batch_rows,
                                  run_id=f"live-unthrottled-{tag}")
            phases["unthrottled"] = _phase("unthrottled", url, probe, load(), unthrottled, 0, say, backfill_cpus, servers)
            _rollback(url, unthrottled.run_id, f"live-undo-{tag}")
            _caught_up(pair, probe)
            limits = replace(DEFAULT_LIMITS, **{name: getattr(args, name) for name in ("max_write_rate", "chunk_time")
                                                if getattr(args, name) is not None}).checked()
            result["governed_limits"] = limits.to_dict()
            governed = replace(base, apply=True, run_id=f"live-governed-{tag}", limits=limits)
            phases["governed"] = _phase("governed", url, probe, load(), governed, 0, say, backfill_cpus, servers)
            _rollback(url, governed.run_id, f"live-undo2-{tag}")  # the data as it was, for another bench
            result["phases"] = phases
            result["targets"] = _targets(phases)
        finally:
            probe.stop()
    finally:
        if pair is not None:
            pair.stop()
        if not args.keep and not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    return result


def _score_rows(url: str) -> int:
    engine = db.connect(url)
    try:
        present = db.table_names(engine)
        if "scores" not in present:
            return 0
        return sum(db.id_bounds(engine, [t for t in ("scores", "scores_relax", "scores_ap") if t in present])[t][2]
                   for t in ("scores", "scores_relax", "scores_ap") if t in present)
    finally:
        engine.dispose()


def _rollback(url: str, run_id: str, rollback_id: str) -> None:
    engine = db.connect(url)
    try:
        rollback_run(engine, run_id, apply=True, rollback_id=rollback_id)
    finally:
        engine.dispose()


def _targets(phases: dict) -> dict:
    """The issue's targets, each {value, limit, met}."""
    base = phases["none"]["load"]["p99_ms"] or 0.0
    governed = phases["governed"]
    errors = governed["load"]["failed"]
    return {
        "governed_p99_over_none": {"value": round(governed["load"]["p99_ms"] / base, 2) if base else None,
                                   "limit": P99_FACTOR,
                                   "met": bool(base) and governed["load"]["p99_ms"] <= P99_FACTOR * base},
        "governed_submission_errors": {"value": errors, "limit": 0, "met": errors == 0},
        "governed_max_lag_s": {"value": governed["max_lag_s"], "limit": DEFAULT_LIMITS.max_lag + LAG_MARGIN,
                               "met": governed["max_lag_s"] <= DEFAULT_LIMITS.max_lag + LAG_MARGIN},
    }


def format_table(r: dict) -> str:
    """The printed table of a live-load result."""
    phases = r["phases"]
    names = tuple(name for name in ("none", "dry", "unthrottled", "governed") if name in phases)
    split = r.get("split_cpus")
    lines = [f"sr-backfill bench --live-load: {r['scores']:,} scores, {r['rate']:g} submissions/s "
             f"(primary {r['database']}, replica {r['replica']}; "
             + (f"servers and load on CPU {split['servers_and_load']}, backfill on {split['backfill']})" if split
                else f"everything sharing {r['host_cpus']} CPUs)"),
             f"  {'':32}" + "".join(f"{name:>14}" for name in names)]

    def row(label, value):
        lines.append(f"  {label:32}" + "".join(f"{value(phases[name]):>14}" for name in names))

    row("submissions", lambda p: f"{p['load']['submissions']:,}")
    row("latency p50 (ms)", lambda p: f"{p['load']['p50_ms']:.1f}")
    row("latency p99 (ms)", lambda p: f"{p['load']['p99_ms']:.1f}")
    row("latency worst 10 s p99 (ms)", lambda p: f"{p['load']['worst_10s_p99_ms'] or 0:.1f}")
    row("latency max (ms)", lambda p: f"{p['load']['max_ms']:.1f}")
    row("errors 1213 / 1205 / other", lambda p: f"{p['load']['deadlocks_1213']} / {p['load']['lock_waits_1205']} / "
        f"{p['load']['failed'] - p['load']['deadlocks_1213'] - p['load']['lock_waits_1205']}")
    row("replica max lag (s)", lambda p: f"{p['max_lag_s']:.1f}")
    row("backfill wall (s)", lambda p: f"{p['backfill']['wall_s']:.1f}" if "backfill" in p else "-")
    row("backfill write (s, driver)", lambda p: f"{p['backfill']['write_s']:.1f}" if "backfill" in p else "-")
    row("grants written", lambda p: f"{p['backfill']['grants_written']:,}" if "backfill" in p else "-")
    lines.append("  (dry: the backfill reading the replica and rating, writing nothing)")
    lines.append(f"  governed limits: {WriteLimits(**r['governed_limits']).describe()}")
    held = phases["governed"]["backfill"]["held_seconds"]
    lines.append("  governed: held " + (", ".join(f"{k} {v:.1f} s" for k, v in held.items()) or "never")
                 + f"; batch sizes {phases['governed']['backfill']['batch_sizes']}")
    for name, target in r["targets"].items():
        lines.append(f"  target {name}: {target['value']} (limit {target['limit']}): {'met' if target['met'] else 'NOT MET'}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Measure, print the table, write --json. Returns 0."""
    result = measure(args)
    print(format_table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str))
        print(f"  json: {args.json}")
    return 0
