"""`sr-backfill compare`: check local star ratings against the live performance service on a sample.

    sr-backfill compare --db URL --osu-dir DIR --service-url URL [--sample 1000] [--rate 10]
        [--concurrency 2] [--batch-size 10] [--timeout 30] [--engine live] [--report DIR] [--seed S]

1. draws a stratified sample of SR keys from the eligible scores (cluster.sampling: candidates spread
   over score groups, rated locally, then picked evenly over full mode x variant x star band);
2. rates them locally with the chosen engine (sr.engine.engine_named, sr.rate.rate_keys, sr.store);
3. asks the service for the same keys (sr.perf.PerfClient: token-bucket rate limit, concurrency limit,
   timeout, retries with backoff and jitter, circuit breaker; a 500 splits the batch until the bad item
   is alone, and bad items are reported, not fatal);
4. writes `compare.json`, `worst.csv` and `compare.png` into --report DIR and prints a summary.

A **band flip** is a key whose integer star band floor(sr) (of the 2-dp ratings) differs between the
local engine and the service: the skill achievements (one band [k, k+1) each) would be granted
differently. Differences are service - local, in stars, on the 2-dp ratings.

Exit codes: 0 done; 2 cannot start (bad option, unknown engine, database error, service unhealthy or
unreachable: nothing was sent but the health check); 3 stopped by the circuit breaker (the partial
report is still written).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from cluster.db import connect
from cluster.sampling import UNRATED_BAND, band_of, draw_candidates, select_stratified
from sr.engines import engine_named
from sr.masking import mask_url
from sr.perf import BreakerPolicy, PerfClient, PerfRequest, PerfResult, PerfRun
from sr.errors import PerfItemFailed, PerfServiceError
from sr.rate import rate_keys
from sr.store import OsuStore

DB_ENV = "SR_BACKFILL_DB"
SERVICE_ENV = "SR_PERF_SERVICE_URL"
WORST_ROWS = 50
FIGURE_SIZE = (12.0, 5.0)  # inches
FIGURE_DPI = 100  # compare.png is 1200 x 500 pixels
EXIT_CANNOT_START = 2
EXIT_STOPPED = 3

# Legacy mod bits that can change stars (DOMAIN.md §3, §5), in the order combos are written.
EZ, TD, HD, HR, DT, RX, HT, NC, FL, AP = 2, 4, 8, 16, 64, 128, 256, 512, 1024, 8192
_MOD_NAMES = ((EZ, "EZ"), (HD, "HD"), (HR, "HR"), (DT | NC, "DT"), (HT, "HT"), (FL, "FL"), (TD, "TD"))
MOD_FAMILIES = ("NM", "HD", "HR", "DT/NC", "HT", "EZ", "FL", "TD", "relax", "autopilot")


class CompareConfigError(Exception):
    """The compare run cannot start: a bad option, an unknown engine, a database error, or a service
    that is unreachable or unhealthy. Raised before any calculate request is sent."""


# ======================================================================================================
# arguments
# ======================================================================================================


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `compare` command's options."""
    parser.add_argument("--db", default=os.environ.get(DB_ENV), help=f"SQLAlchemy URL of the scores (default: ${DB_ENV})")
    parser.add_argument("--osu-dir", required=True, help="directory (or pyarrow.fs URI) of {beatmap_id}.osu files")
    parser.add_argument(
        "--service-url", default=os.environ.get(SERVICE_ENV),
        help=f"performance service base URL, e.g. http://perf:8665 (default: ${SERVICE_ENV}); credentials are masked in output",
    )
    parser.add_argument("--sample", type=int, default=1000, help="keys to compare (default 1000)")
    parser.add_argument("--oversample", type=float, default=3.0, help="candidate keys rated locally per sampled key, to find star bands (default 3)")
    parser.add_argument("--rate", type=float, default=10.0, help="requests per second at most, retries included (default 10)")
    parser.add_argument("--concurrency", type=int, default=2, help="requests in flight at most (default 2)")
    parser.add_argument("--batch-size", type=int, default=10, help="items per request; the service computes them one by one (default 10)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    parser.add_argument("--retries", type=int, default=3, help="retries of a timed-out or 5xx (not 500) request (default 3)")
    parser.add_argument("--breaker-failures", type=int, default=5, help="consecutive failed requests that stop the run (default 5)")
    parser.add_argument("--slow-seconds", type=float, default=10.0, help="an answer slower than this is slow (default 10 s)")
    parser.add_argument("--slow-count", type=int, default=5, help="slow answers among the last 10 that stop the run (default 5)")
    parser.add_argument("--engine", default="live", help="local SR engine (default live)")
    parser.add_argument("--report", type=Path, default=Path("compare-report"), help="report directory (default ./compare-report)")
    parser.add_argument("--seed", type=int, default=20220623, help="seed of the sample and the retry jitter")


def _check_options(args: argparse.Namespace) -> None:
    problems = []
    if not args.db:
        problems.append(f"--db is required (or set ${DB_ENV})")
    if not args.service_url:
        problems.append(f"--service-url is required (or set ${SERVICE_ENV})")
    for name, low in (("sample", 1), ("concurrency", 1), ("batch_size", 1), ("breaker_failures", 1), ("slow_count", 1)):
        if getattr(args, name) < low:
            problems.append(f"--{name.replace('_', '-')} must be >= {low}")
    for name in ("rate", "timeout", "slow_seconds"):
        if not getattr(args, name) > 0:
            problems.append(f"--{name.replace('_', '-')} must be > 0")
    if args.retries < 0:
        problems.append("--retries must be >= 0")
    if args.oversample < 1:
        problems.append("--oversample must be >= 1")
    if args.slow_count > 10:
        problems.append("--slow-count must be <= 10 (the window)")
    if problems:
        raise CompareConfigError("; ".join(problems))


# ======================================================================================================
# mods
# ======================================================================================================


def mod_combo(mods: int) -> str:
    """The SR-relevant mods of a key as one label: "NM", "HDDT", "RX+HR", "AP+NM" (NC counts as DT)."""
    names = "".join(name for bit, name in _MOD_NAMES if mods & bit) or "NM"
    if mods & RX:
        return f"RX+{names}"
    if mods & AP:
        return f"AP+{names}"
    return names


def mod_families(mods: int) -> list[str]:
    """Every family a key belongs to (MOD_FAMILIES): NM when no SR-relevant mod besides relax/autopilot."""
    families = [family for (bit, _), family in zip(_MOD_NAMES, ("EZ", "HD", "HR", "DT/NC", "HT", "FL", "TD")) if mods & bit]
    families = families or ["NM"]
    if mods & RX:
        families.append("relax")
    if mods & AP:
        families.append("autopilot")
    return sorted(families, key=MOD_FAMILIES.index)


# ======================================================================================================
# the comparison (pure)
# ======================================================================================================


def _hundredths(stars: float) -> int:
    return int(round(stars * 100))


def _group_stats(rows: list[dict]) -> dict:
    """keys, equal_2dp, equal_2dp_pct, band_flips, max_abs_diff of compared rows."""
    keys = len(rows)
    equal = sum(1 for r in rows if r["diff_h"] == 0)
    return {
        "keys": keys,
        "equal_2dp": equal,
        "equal_2dp_pct": round(100.0 * equal / keys, 2) if keys else None,
        "band_flips": sum(1 for r in rows if r["band_flip"]),
        "max_abs_diff": round(max((abs(r["diff_h"]) for r in rows), default=0) / 100, 2),
    }


def compare_keys(sample: pa.Table, local: dict, run: PerfRun) -> dict:
    """Compare local and service ratings of the sample; returns the body of compare.json (no settings).

    sample: select_stratified's table (CANDIDATE_SCHEMA + band, stratum, weight), one row per key.
    local:  (beatmap_md5, mode_vn, mods) -> (sr 2 dp or None, skip_reason or None).
    run:    the service's answers, one per sample row (PerfRun.results).
    Also returns under "_rows" the per-key rows (for worst.csv and the figure; dropped from JSON).
    """
    rows = sample.to_pylist()
    answers = _sort_answers(rows, local, run)
    compared = answers.compared
    by_full_mode, by_family, by_combo, by_stratum = _groups(compared)
    return {
        "keys_sampled": len(rows),
        "keys_compared": len(compared),
        **_agreement(compared),
        "band_flips": _band_flips(compared, by_full_mode, by_family, by_combo),
        "band_matrix": _band_matrix(compared),
        "by_full_mode": {mode: _group_stats(rs) for mode, rs in sorted(by_full_mode.items(), key=lambda kv: int(kv[0]))},
        "by_mod_family": {family: _group_stats(by_family[family]) for family in MOD_FAMILIES if family in by_family},
        "by_mod_combo": {combo: _group_stats(rs) for combo, rs in sorted(by_combo.items())},
        "by_stratum": {label: _group_stats(rs) for label, rs in sorted(by_stratum.items())},
        "local_unrated": dict(sorted(answers.local_unrated.items())),
        "service_rated_local_unrated": answers.service_only,
        "bad_items": answers.bad_items,
        "unanswered": dict(sorted(answers.unanswered.items())),
        "not_asked": answers.not_asked,
        "_rows": compared,
    }


@dataclass(slots=True)
class _Answers:
    """The sample's keys by what became of them: `compared` (both rated: compared rows), `bad_items`
    (the service failed on the key alone), `unanswered` (service errors by reason), `local_unrated`
    (local skip reasons, whatever the service said), `service_only` (rated by the service only),
    `not_asked` (never sent: the run stopped first)."""

    compared: list[dict] = field(default_factory=list)
    bad_items: list[dict] = field(default_factory=list)
    unanswered: Counter = field(default_factory=Counter)
    local_unrated: Counter = field(default_factory=Counter)
    service_only: list[dict] = field(default_factory=list)
    not_asked: int = 0


def _sort_answers(rows: list[dict], local: dict, run: PerfRun) -> _Answers:
    answers = _Answers()
    for row, answer in zip(rows, run.results):
        sr_local, skip = local.get((row["beatmap_md5"], row["mode_vn"], row["mods"]), (None, "not_rated"))
        base = {
            "beatmap_id": row["beatmap_id"],
            "beatmap_md5": row["beatmap_md5"],
            "full_mode": row["full_mode"],
            "mode_vn": row["mode_vn"],
            "mods": row["mods"],
            "mod_combo": mod_combo(row["mods"]),
            "stratum": row["stratum"],
        }
        if sr_local is None:
            answers.local_unrated[skip] += 1
        if answer is None:
            answers.not_asked += 1
        elif isinstance(answer, PerfItemFailed) and answer.isolated:
            answers.bad_items.append({**base, "local_sr": sr_local, "local_skip_reason": skip, "detail": answer.detail})
        elif isinstance(answer, PerfServiceError):
            answers.unanswered[answer.reason] += 1
        elif isinstance(answer, PerfResult):
            if sr_local is None:
                answers.service_only.append({**base, "service_sr": answer.stars, "local_skip_reason": skip})
                continue
            answers.compared.append(_compared_row(base, sr_local, answer.stars, row["weight"]))
    return answers


def _compared_row(base: dict, sr_local: float, sr_service: float, weight: float) -> dict:
    """One key rated both ways: the 2-dp ratings, their difference in hundredths, their bands."""
    local_h, service_h = _hundredths(sr_local), _hundredths(sr_service)
    return {
        **base,
        "local_sr": local_h / 100,
        "service_sr": service_h / 100,
        "diff_h": service_h - local_h,
        "local_band": local_h // 100,
        "service_band": service_h // 100,
        "band_flip": local_h // 100 != service_h // 100,
        "weight": weight,
    }


def _groups(compared: list[dict]) -> tuple[dict[str, list], dict[str, list], dict[str, list], dict[str, list]]:
    """The compared rows by full mode (as text), by mod family (a row in each of its families), by mod
    combination and by stratum."""
    by_full_mode: dict[str, list] = defaultdict(list)
    by_family: dict[str, list] = defaultdict(list)
    by_combo: dict[str, list] = defaultdict(list)
    by_stratum: dict[str, list] = defaultdict(list)
    for r in compared:
        by_full_mode[str(r["full_mode"])].append(r)
        for family in mod_families(r["mods"]):
            by_family[family].append(r)
        by_combo[r["mod_combo"]].append(r)
        by_stratum[r["stratum"]].append(r)
    return by_full_mode, by_family, by_combo, by_stratum


def _agreement(compared: list[dict]) -> dict:
    """equal_2dp (count, share, share weighted by stratum) and the percentiles of |diff| in stars."""
    abs_diffs = np.array([abs(r["diff_h"]) / 100 for r in compared], dtype=np.float64)

    def percentile(q: float) -> float | None:
        return round(float(np.percentile(abs_diffs, q)), 4) if abs_diffs.size else None

    weights = np.array([r["weight"] for r in compared], dtype=np.float64)
    equal_mask = np.array([r["diff_h"] == 0 for r in compared], dtype=bool)
    return {
        "equal_2dp": int(equal_mask.sum()),
        "equal_2dp_pct": round(100.0 * equal_mask.mean(), 2) if compared else None,
        "equal_2dp_pct_weighted": round(100.0 * weights[equal_mask].sum() / weights.sum(), 2) if compared else None,
        "abs_diff": {"p50": percentile(50), "p90": percentile(90), "p99": percentile(99), "max": percentile(100)},
    }


def _band_flips(compared: list[dict], by_full_mode: dict[str, list], by_family: dict[str, list],
                by_combo: dict[str, list]) -> dict:
    """Band flips: in all (count, share, weighted share), per full mode, mod family and mod combination."""
    weights = np.array([r["weight"] for r in compared], dtype=np.float64)
    flip_mask = np.array([r["band_flip"] for r in compared], dtype=bool)
    flips = int(flip_mask.sum())
    return {
        "total": flips,
        "pct": round(100.0 * flips / len(compared), 2) if compared else None,
        "pct_weighted": round(100.0 * weights[flip_mask].sum() / weights.sum(), 2) if compared else None,
        "by_full_mode": {mode: sum(r["band_flip"] for r in rs) for mode, rs in sorted(by_full_mode.items(), key=lambda kv: int(kv[0]))},
        "by_mod_family": {family: sum(r["band_flip"] for r in by_family[family]) for family in MOD_FAMILIES if family in by_family},
        "by_mod_combo": {combo: sum(r["band_flip"] for r in rs) for combo, rs in sorted(by_combo.items())},
    }


def _band_matrix(compared: list[dict]) -> dict:
    """Keys per (local band, service band), bands 0 to at least 10 (negative bands counted as 0)."""
    top_band = max([10] + [max(r["local_band"], r["service_band"]) for r in compared])
    matrix = [[0] * (top_band + 1) for _ in range(top_band + 1)]
    for r in compared:
        matrix[max(0, r["local_band"])][max(0, r["service_band"])] += 1
    return {"bands": list(range(top_band + 1)), "rows": "local band", "columns": "service band", "counts": matrix}


# ======================================================================================================
# outputs
# ======================================================================================================

WORST_COLUMNS = (
    "rank", "beatmap_id", "beatmap_md5", "full_mode", "mode_vn", "mods", "mod_combo", "local_sr",
    "service_sr", "diff", "abs_diff", "local_band", "service_band", "band_flip", "stratum",
)


def write_worst_csv(path: Path, compared: list[dict], limit: int = WORST_ROWS) -> int:
    """The `limit` compared keys with the largest |service - local| (stars), ties by md5/mode/mods.
    Returns the rows written (a header is always written)."""
    worst = sorted(compared, key=lambda r: (-abs(r["diff_h"]), r["beatmap_md5"], r["mode_vn"], r["mods"]))[:limit]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(WORST_COLUMNS)
        for rank, r in enumerate(worst, start=1):
            writer.writerow(
                [
                    rank, r["beatmap_id"], r["beatmap_md5"], r["full_mode"], r["mode_vn"], r["mods"], r["mod_combo"],
                    f"{r['local_sr']:.2f}", f"{r['service_sr']:.2f}", f"{r['diff_h'] / 100:+.2f}",
                    f"{abs(r['diff_h']) / 100:.2f}", r["local_band"], r["service_band"], int(r["band_flip"]), r["stratum"],
                ]
            )
    return len(worst)


def plot_compare(path: Path, compared: list[dict], matrix: list[list[int]]) -> None:
    """compare.png, 1200 x 500 px: histogram of service - local (stars) and the band matrix
    (local band rows x service band columns; off-diagonal cells are band flips, in red)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGURE_SIZE, dpi=FIGURE_DPI)
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1.25, 1]})

    diffs = np.array([r["diff_h"] / 100 for r in compared], dtype=np.float64)
    equal = int((diffs == 0).sum()) if diffs.size else 0
    if diffs.size:
        reach = max(0.05, float(np.abs(diffs).max()))
        step = max(0.01, math.ceil(reach * 2 / 80 * 100) / 100)  # at most ~80 bins, whole hundredths
        edges = np.arange(-reach - step / 2, reach + step, step)
        left.hist(diffs, bins=edges, color="#3a6ea5", edgecolor="white", linewidth=0.3)
        left.set_yscale("log")
        left.set_ylim(bottom=0.7)
    left.axvline(0, color="black", linewidth=0.8)
    left.set_xlabel("service − local star rating (stars, 2 dp)")
    left.set_ylabel("keys (log scale)")
    pct = f"{100.0 * equal / diffs.size:.1f}%" if diffs.size else "n/a"
    left.set_title(f"{diffs.size} keys compared, {pct} equal at 2 dp")

    counts = np.array(matrix, dtype=np.float64)
    bands = counts.shape[0]
    shown = np.where(counts > 0, counts, np.nan)
    vmax = max(1.0, float(np.nanmax(shown))) if np.isfinite(shown).any() else 1.0
    image = right.imshow(shown, origin="lower", cmap="Blues", norm=LogNorm(vmin=0.3, vmax=max(vmax, 1.0001)))
    figure.colorbar(image, ax=right, fraction=0.046, pad=0.04, label="keys")
    for i in range(bands):
        for j in range(bands):
            if counts[i, j] > 0:
                right.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=7,
                           color="red" if i != j else "black", fontweight="bold" if i != j else "normal")
    right.set_xticks(range(bands))
    right.set_yticks(range(bands))
    right.set_xlabel("service band floor(sr)")
    right.set_ylabel("local band floor(sr)")
    flips = int(counts.sum() - np.trace(counts))
    right.set_title(f"band flips (off-diagonal, red): {flips}")
    figure.suptitle("sr-backfill compare: local star ratings vs the performance service")
    figure.tight_layout()
    figure.savefig(path, dpi=FIGURE_DPI)


def format_summary(report: dict) -> str:
    """The printed summary: sample, agreement, band flips, bad items, service traffic."""
    service = report["service"]
    diff = report["abs_diff"]
    flips = report["band_flips"]

    def number(value, suffix=""):
        return "n/a" if value is None else f"{value}{suffix}"

    lines = [
        f"sr-backfill compare: {report['engine']['name']} vs {report['service_url']} (database {report['database']})",
        f"  sample              {report['keys_sampled']:,} keys of {report['candidates']:,} candidates, "
        f"{len(report['strata'])} strata, seed {report['seed']}",
        f"  compared            {report['keys_compared']:,} keys, equal at 2 dp {number(report['equal_2dp_pct'], '%')} "
        f"(reweighted {number(report['equal_2dp_pct_weighted'], '%')})",
        f"  |difference|        p50 {number(diff['p50'])}  p90 {number(diff['p90'])}  p99 {number(diff['p99'])}  max {number(diff['max'])} stars",
        f"  band flips          {flips['total']:,} ({number(flips['pct'], '%')})"
        + ("; by full mode " + ", ".join(f"{m}: {n}" for m, n in flips["by_full_mode"].items() if n) if flips["total"] else ""),
    ]
    if flips["total"]:
        lines.append("    by mod family     " + ", ".join(f"{f} {n}" for f, n in flips["by_mod_family"].items() if n))
    lines += [
        f"  bad items           {len(report['bad_items']):,} isolated (HTTP 500 alone); locally unrated "
        + (", ".join(f"{k} {v}" for k, v in report["local_unrated"].items()) or "0"),
        "  unanswered          " + (", ".join(f"{k} {v}" for k, v in report["unanswered"].items()) or "0")
        + f"; not asked {report['not_asked']:,}",
        f"  service traffic     {service['requests']:,} requests ({service['isolation_requests']:,} isolating, "
        f"{service['retries']:,} retries), {service['elapsed_s']:.1f} s, {service['effective_rate']:.2f} requests/s "
        f"(limit {report['settings']['rate']:g}/s, {report['settings']['concurrency']} in flight)",
        f"  report              {report['report_dir']}",
    ]
    if report["stopped"]:
        lines.append(f"  STOPPED             {report['stopped']}")
    return "\n".join(lines)


# ======================================================================================================
# the run
# ======================================================================================================


def _without_password(text: str, db_url: str) -> str:
    """`text` with the database URL's password replaced by ***."""
    try:
        password = sa.engine.make_url(db_url).password
    except sa.exc.ArgumentError:
        return text
    return text.replace(str(password), "***") if password else text


def _requests_of(sample: pa.Table) -> list[PerfRequest]:
    return [
        PerfRequest(
            beatmap_id=row["beatmap_id"],
            beatmap_md5=row["beatmap_md5"],
            mode=row["mode_vn"],
            mods=row["mods"],
            max_combo=max(0, row["max_combo"]),
            miss_count=max(0, row["miss_count"]),
            accuracy=min(100.0, max(0.0, float(row["accuracy"]))),
        )
        for row in sample.select(["beatmap_id", "beatmap_md5", "mode_vn", "mods", "max_combo", "miss_count", "accuracy"]).to_pylist()
    ]


def ask_service(client: PerfClient, sample: pa.Table, batch_size: int) -> PerfRun:
    """The service's answers for every sample row, in row order.

    Keys the local engine rated go in batches of `batch_size`; keys it could not rate (band
    UNRATED_BAND: missing, stale or broken files) are most likely bad on the service too, so they go
    one per request: a batch of bad items would cost 2 x batch_size - 1 requests to isolate, one by
    one costs one each. Stops (returns PerfRun.stopped) when the circuit breaker opens.
    """
    bands = sample.column("band").to_pylist()
    requests = _requests_of(sample)
    rated = [i for i, band in enumerate(bands) if band != UNRATED_BAND]
    unrated = [i for i, band in enumerate(bands) if band == UNRATED_BAND]
    results: list = [None] * len(requests)
    run = client.calculate_many([requests[i] for i in rated], batch_size=batch_size)
    for i, answer in zip(rated, run.results):
        results[i] = answer
    if unrated and run.stopped is None:
        run = client.calculate_many([requests[i] for i in unrated], batch_size=1)
        for i, answer in zip(unrated, run.results):
            results[i] = answer
    return PerfRun(results=tuple(results), stopped=run.stopped, stats=client.stats())


def run_compare(args: argparse.Namespace) -> dict:
    """Sample, rate locally, ask the service, write the report; returns the report dict.

    Raises CompareConfigError before anything but the health check reached the service.
    """
    _check_options(args)
    started = time.monotonic()
    seconds: dict[str, float] = {}
    try:
        engine = engine_named(args.engine)
    except ValueError as exc:
        raise CompareConfigError(str(exc)) from exc
    service_url = mask_url(args.service_url)
    try:
        client = PerfClient(
            args.service_url,
            rate=args.rate,
            concurrency=args.concurrency,
            timeout=args.timeout,
            retries=args.retries,
            breaker=BreakerPolicy(failures=args.breaker_failures, slow_seconds=args.slow_seconds, slow_count=args.slow_count),
            seed=args.seed,
        )
    except ValueError as exc:
        raise CompareConfigError(f"bad --service-url {service_url}: {exc}") from exc
    with client:
        try:
            healthy = client.health()
        except PerfServiceError as exc:
            raise CompareConfigError(f"performance service not reachable: {exc}") from exc
        if not healthy:
            raise CompareConfigError(f"performance service {service_url} is not healthy (GET /_health did not answer 2xx)")

        stage = time.monotonic()
        database = mask_url(args.db)
        try:
            db = connect(args.db)
            candidates = draw_candidates(db, math.ceil(args.sample * args.oversample), args.seed)
            db.dispose()
        except sa.exc.SQLAlchemyError as exc:
            detail = _without_password(str(getattr(exc, "orig", None) or exc).splitlines()[0][:300], args.db)
            raise CompareConfigError(f"cannot read scores from {database}: {type(exc).__name__}: {detail}") from exc
        seconds["sample"] = time.monotonic() - stage

        stage = time.monotonic()
        rated = rate_keys(candidates.select(["beatmap_md5", "beatmap_id", "mode_vn", "mods"]), OsuStore(args.osu_dir), engine)
        local = {
            (md5, mode_vn, mods): (sr, skip)
            for md5, mode_vn, mods, sr, skip in zip(
                *(rated.table.column(name).to_pylist() for name in ("beatmap_md5", "mode_vn", "mods", "sr", "skip_reason"))
            )
        }
        bands = [
            band_of(local[(md5, mode_vn, mods)][0])
            for md5, mode_vn, mods in zip(*(candidates.column(name).to_pylist() for name in ("beatmap_md5", "mode_vn", "mods")))
        ]
        sample = select_stratified(candidates, bands, args.sample, args.seed)
        seconds["rate_local"] = time.monotonic() - stage

        stage = time.monotonic()
        run = ask_service(client, sample, args.batch_size)
        seconds["service"] = time.monotonic() - stage

    stage = time.monotonic()
    body = compare_keys(sample, local, run)
    compared = body.pop("_rows")
    strata = Counter(sample.column("stratum").to_pylist())
    report = {
        "database": database,
        "service_url": service_url,
        "engine": {"name": engine.name, "version": engine.version},
        "seed": args.seed,
        "settings": {
            "sample": args.sample, "oversample": args.oversample, "rate": args.rate, "concurrency": args.concurrency,
            "batch_size": args.batch_size, "timeout": args.timeout, "retries": args.retries,
            "breaker_failures": args.breaker_failures, "slow_seconds": args.slow_seconds, "slow_count": args.slow_count,
        },
        "candidates": candidates.num_rows,
        "candidates_unrated_locally": dict(rated.errors),
        "strata": dict(sorted(strata.items())),
        **body,
        "service": run.stats.to_dict(),
        "stopped": str(run.stopped.why) if run.stopped else None,
        "report_dir": str(args.report),
    }
    args.report.mkdir(parents=True, exist_ok=True)
    write_worst_csv(args.report / "worst.csv", compared)
    plot_compare(args.report / "compare.png", compared, report["band_matrix"]["counts"])
    seconds["report"] = time.monotonic() - stage
    seconds["total"] = time.monotonic() - started
    report["seconds"] = {name: round(value, 3) for name, value in seconds.items()}
    report["elapsed_s"] = report["seconds"]["total"]
    (args.report / "compare.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def run(args: argparse.Namespace) -> int:
    """The `compare` command: run, print the summary. Returns 0, 2 (cannot start) or 3 (stopped)."""
    try:
        report = run_compare(args)
    except CompareConfigError as exc:
        print(f"sr-backfill compare: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    print(format_summary(report))
    if report["stopped"]:
        print(
            f"sr-backfill compare: stopped early, circuit breaker open: {report['stopped']} "
            f"(partial report in {args.report})",
            file=sys.stderr,
        )
        return EXIT_STOPPED
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m jobs.compare ...` (same options as `sr-backfill compare`)."""
    parser = argparse.ArgumentParser(prog="sr-backfill compare", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # through the console script's handler: errors masked like everywhere else
    from jobs import cli

    sys.exit(cli.main(["compare", *sys.argv[1:]]))
