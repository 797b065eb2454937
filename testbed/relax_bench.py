"""Cost of the osu_2019 port against akatsuki-pp-py 1.0.1: `python -m testbed.relax_bench`.

For every shipped osu! map (data/maps, file Mode 0) it times, after warm-up (compile excluded):
- port: `parse` (ms per map) and `relax_stars` (ms per key, median over the common relax mods);
- akatsuki-pp-py: `Beatmap(bytes=...)` (ms per map) and
  `Calculator(mode=0, mods=m).performance(beatmap).difficulty.stars` (ms per key);
and prints per map and the medians over maps of: a key alone (map already parsed) and a key
with its own parse (one key per map, the worst case). Compile time is reported separately:
kernels compiled from scratch in a child process with an empty numba cache, and loaded from
the on-disk cache in another child process.

Options: `--maps DIR` (default data/maps), `--repeat N` (default 7), `--no-compile` (skip the
child processes).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RELAX_MODS = (128, 136, 144, 192, 200, 216, 384, 704, 1152)
REPO = Path(__file__).resolve().parents[1]


def _median_ms(fn, repeat: int) -> float:
    """Median wall time of fn() in ms over `repeat` runs."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def compile_seconds(cold: bool) -> float:
    """Seconds a fresh process spends in `warmup()` (cold: with an empty numba cache)."""
    code = "import time; t = time.perf_counter(); import sr.osu2019 as o; o.warmup(); print(time.perf_counter() - t)"
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as cache_dir:
        if cold:
            env["NUMBA_CACHE_DIR"] = cache_dir
        out = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
    return float(out.stdout.strip().splitlines()[-1])


def osu_maps(root: Path) -> list[Path]:
    """The .osu files under root whose [General] Mode is 0 (the relax osu_2019 path)."""
    from sr.errors import RatingError
    from sr.osu2019 import parse

    found = []
    for path in sorted(root.rglob("*.osu")):
        try:
            parse(path.read_bytes(), path.name)
        except RatingError:
            continue
        found.append(path)
    return found


def bench_map(path: Path, repeat: int) -> dict:
    """Timings (ms) of one map: port parse / key, akatsuki-pp-py parse / key."""
    import akatsuki_pp_py as aka

    from sr.osu2019 import parse, relax_stars

    content = path.read_bytes()
    bm = parse(content, path.name)
    port_parse = _median_ms(lambda: parse(content, path.name), repeat)
    port_key = statistics.median(
        _median_ms(lambda m=m: relax_stars(bm, m), repeat) for m in RELAX_MODS
    )
    amap = aka.Beatmap(bytes=content)
    aka_parse = _median_ms(lambda: aka.Beatmap(bytes=content), repeat)
    aka_key = statistics.median(
        _median_ms(
            lambda m=m: (
                aka.Calculator(mode=0, mods=m).performance(amap).difficulty.stars
            ),
            repeat,
        )
        for m in RELAX_MODS
    )
    return {
        "map": str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path),
        "objects": bm.n_objects,
        "port_parse": port_parse,
        "port_key": port_key,
        "aka_parse": aka_parse,
        "aka_key": aka_key,
    }


def run(maps_dir: Path, repeat: int = 7, with_compile: bool = True) -> dict:
    """Benchmark every osu! map under maps_dir; returns the rows and the summary medians."""
    from sr.osu2019 import warmup

    summary: dict = {}
    if with_compile:
        summary["compile_cold_s"] = compile_seconds(cold=True)
        summary["compile_cached_s"] = compile_seconds(cold=False)
    warmup()
    rows = [bench_map(p, repeat) for p in osu_maps(maps_dir)]
    med = lambda key: statistics.median(r[key] for r in rows)
    summary.update(
        maps=len(rows),
        port_key_ms=med("port_key"),
        aka_key_ms=med("aka_key"),
        port_parse_ms=med("port_parse"),
        aka_parse_ms=med("aka_parse"),
        key_ratio=statistics.median(r["port_key"] / r["aka_key"] for r in rows),
        key_with_parse_ratio=statistics.median(
            (r["port_parse"] + r["port_key"]) / (r["aka_parse"] + r["aka_key"])
            for r in rows
        ),
        worst_key_with_parse_ratio_200=max(
            (
                (r["port_parse"] + r["port_key"]) / (r["aka_parse"] + r["aka_key"])
                for r in rows
                if r["objects"] >= 200
            ),
            default=float("nan"),
        ),
        worst_key_with_parse_ratio=max(
            (r["port_parse"] + r["port_key"]) / (r["aka_parse"] + r["aka_key"])
            for r in rows
        ),
    )
    return {"rows": rows, "summary": summary}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--maps", type=Path, default=REPO / "data" / "maps")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args(argv)
    result = run(args.maps, args.repeat, not args.no_compile)
    print(
        f"{'map':58} {'objs':>5} {'parse':>7} {'key':>7} | {'aka parse':>9} {'aka key':>8}  (ms)"
    )
    for r in result["rows"]:
        print(
            f"{r['map'][-58:]:58} {r['objects']:5d} {r['port_parse']:7.3f} {r['port_key']:7.3f} | "
            f"{r['aka_parse']:9.3f} {r['aka_key']:8.3f}"
        )
    s = result["summary"]
    print()
    if "compile_cold_s" in s:
        print(
            f"numba compile, empty cache: {s['compile_cold_s']:.1f} s; load from cache: {s['compile_cached_s']:.2f} s (once per process)"
        )
    print(f"maps: {s['maps']} (median over maps below)")
    print(
        f"per key, map parsed once:  port {s['port_key_ms']:.3f} ms vs akatsuki-pp-py {s['aka_key_ms']:.3f} ms  -> ratio {s['key_ratio']:.2f}"
    )
    print(
        f"parse per map:             port {s['port_parse_ms']:.3f} ms vs akatsuki-pp-py {s['aka_parse_ms']:.3f} ms"
    )
    print(
        f"per key incl. its own parse: ratio {s['key_with_parse_ratio']:.2f} (median), "
        f"worst map {s['worst_key_with_parse_ratio']:.2f}, "
        f"worst map of >= 200 objects {s['worst_key_with_parse_ratio_200']:.2f}"
    )


if __name__ == "__main__":
    main()
