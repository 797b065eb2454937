"""Human-readable summaries and report files of the commands (run, rollback, verify, consolidate-mode7).

A run's report is a JSON summary (RunSummary.to_dict) plus CSVs next to it: NAME.errors.csv, the
sample score ids of every skip reason, database retries, ConnectorX fallbacks, failed shards and
quarantined SR keys (engine_crash_key); NAME.stats-only.csv, every
user whose current user_stats reach a play-count/hit achievement the stored plays do not.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from conditions.catalogue import format_id_ranges

FAMILY_LABELS = {
    "skill_pass": "skill pass",
    "skill_fc": "skill FC",
    "combo": "combo",
    "playcount": "play count",
    "hits": "hits",
    "mod_intro": "mod intro",
    "stumbler": "stumbler",
    "jackpot": "jackpot",
}
ERROR_COLUMNS = ("run_id", "reason", "count", "table", "score_id", "user_id", "beatmap_md5", "detail")
STATS_ONLY_COLUMNS = ("achievement_id", "mode", "user_id", "playcount", "total_hits")


def _rows_against_scope(summary: dict) -> list[str]:
    """Per score table "name read / in scope", flagged where a table was read short."""
    in_scope = summary.get("rows_in_scope") or {}
    parts = []
    for name, count in summary["rows_read"].items():
        scope = in_scope.get(name)
        text = f"{name} {count:,}" if scope is None else f"{name} {count:,} / {scope:,}"
        parts.append(text + (" SHORT" if scope is not None and count < scope else ""))
    return parts


def format_summary(summary: dict) -> str:
    """Render a RunSummary dict as an aligned text block."""
    scope = summary.get("scope") or {}
    fallback = summary.get("stats_fallback") or {}
    failures = summary.get("database_errors") or {}
    reads = summary.get("reads") or {}
    crashes = summary.get("engine_crashes") or {}
    lines = [
        (
            f"sr-backfill run {summary.get('run_id', '')} on {summary['database']} "
            f"({'dry run' if summary['dry_run'] else 'applied'}{', resumed' if summary.get('resumed') else ''}): "
            f"{summary.get('status', 'finished')}"
        ),
        f"  engine              {summary['engine'].get('name', '?')} ({summary['engine'].get('version', '?')})",
        f"  scope               tier {scope.get('tier', 'all')}, {scope.get('users_in_scope', '?')} users"
        + (f", {scope['user_ids']} listed" if scope.get("user_ids") else "")
        + (f", sample {scope['sample_users']} (seed {scope['sample_seed']})" if scope.get("sample_users") else "")
        + f", achievements {_short(scope.get('achievements', 'all'))}"
        + (f", since {scope['since']}" if scope.get("since") is not None else "")
        + (f", until {scope['until']}" if scope.get("until") is not None else ""),
        f"  workers / shards    {summary['workers']} / {summary['shards']}"
        + (f" ({summary['shards_done_before']} done before)" if summary.get("shards_done_before") else "")
        + (f", {summary['shards_failed']} FAILED" if summary.get("shards_failed") else ""),
        "  rows read/in scope " + ", ".join(_rows_against_scope(summary))
        + (f" (table scan: {summary['scan_ranges']} id ranges, {summary['waves']} waves)"
           if summary.get("read_mode") == "scan" else " (by user)" if summary.get("read_mode") == "users" else ""),
        f"  eligible scores     {summary['eligible_scores']:,}",
        "  not eligible        " + ", ".join(f"{reason} {count:,}" for reason, count in summary["ineligible"].items()),
        f"  unique SR keys      {summary['sr_keys']:,}",
        f"  SR calculations     {summary['sr_calculations']:,} (SR cache hits {summary.get('sr_cache_hits', 0):,}; .osu downloaded {summary.get('beatmaps_downloaded', 0):,})",
        "  SR errors (keys)    " + ", ".join(f"{reason} {count:,}" for reason, count in summary["sr_errors"].items()),
        f"  scores without SR   {summary['scores_without_sr']:,}",
        "  skipped (scores)    "
        + (", ".join(f"{reason} {count:,}" for reason, count in (summary.get("skipped") or {}).items()) or "none"),
        f"  grants              {summary['grants'].get('total', 0):,} (already held, skipped: {summary['already_held']:,})",
        "    by family         "
        + ", ".join(f"{FAMILY_LABELS[f]} {n:,}" for f, n in summary["grants"].get("by_family", {}).items()),
        "    by full mode      "
        + ", ".join(f"{mode}: {n:,}" for mode, n in summary["grants"].get("by_full_mode", {}).items()),
        "  left out            " + (f"ids {format_id_ranges(summary['left_out'])} (not in less_achievements)"
                                     if summary.get("left_out") else "none"),
        "  never granted       " + _never_granted(summary.get("not_granted") or []),
        f"  stats only          {fallback.get('candidates', 0):,} grants for {fallback.get('users', 0):,} users "
        + ("granted, dated now" if fallback.get("mode") == "now" else "reported, not granted (--stats-fallback now)"),
        f"  grants written      {summary['grants_written']:,}"
        + (f" (already present, skipped: {summary['already_present']:,})" if summary.get("already_present") else "")
        + (f"  (file: {summary['out']})" if summary["out"] else ""),
        "  database retries    "
        + (", ".join(f"error {code}: {n}" for code, n in (failures.get("retries") or {}).items()) or "none"),
        *_failed_shard_lines(failures.get("failed_shards") or []),
        f"  readers (tables)    connectorx {reads.get('connectorx', 0):,}, sqlalchemy {reads.get('sqlalchemy', 0):,}"
        + ("; ConnectorX fallbacks: " + ", ".join(f"{reason}: {n:,}" for reason, n in reads["fallbacks"].items())
           if reads.get("fallbacks") else ""),
        _software_line(summary.get("software") or {}),
        f"  rater restarts      {crashes.get('restarts', 0)}"
        + (f" ({len(crashes['quarantined'])} keys quarantined: engine_crash)" if crashes.get("quarantined") else ""),
        *_live_lines(summary),
        "  seconds             " + ", ".join(f"{stage} {value:.2f}" for stage, value in summary["seconds"].items()),
    ]
    return "\n".join(lines)


def _failed_shard_lines(failed: list[dict]) -> list[str]:
    """The failed shards (RunSummary.database_errors["failed_shards"]: {shard, kind, error}, masked) by error
    type, and the first one's message: an operator sees why before opening the report."""
    if not failed:
        return []
    kinds: dict[str, int] = {}
    for item in failed:
        kind = item.get("kind") or "unknown"
        kinds[kind] = kinds.get(kind, 0) + 1
    first = failed[0]
    message = " ".join(str(first.get("error", "")).split())
    return ["  failed shards       " + ", ".join(f"{kind} {n:,}" for kind, n in sorted(kinds.items()))
            + " (a resume runs them again)",
            f"    first: shard {first.get('shard')}: {message[:300]}"]


def _figures(figures: dict | None, unit: str = "") -> str:
    """"p50 0.4 p90 0.9 p99 1.2 max 31 s" from {samples, p50, p90, p99, max} ("no figures" when empty)."""
    if not figures or not figures.get("samples"):
        return "no figures"
    return " ".join(f"{name} {figures[name]:g}" for name in ("p50", "p90", "p99", "max")) + unit


def _live_lines(summary: dict) -> list[str]:
    """The read database and the write governor's figures (issue 13: docs/LIVE.md)."""
    lines = []
    read = summary.get("read_database") or {}
    if read.get("replica"):
        lag = "not visible" if read.get("lag_seconds") is None else f"{read['lag_seconds']:g} s"
        lines.append(f"  reads from          {read['database']} (replica lag at start {lag}: {read.get('lag_source')})")
    governor = summary.get("governor") or {}
    if governor:
        lines += _governor_lines(governor)
    elif not summary.get("dry_run"):
        lines.append("  governor            none (ungoverned writes)")
    return lines


def _governor_lines(governor: dict) -> list[str]:
    """A write governor's status (WriteGovernor.status()): held seconds by reason, lag, Threads_running,
    batch sizes."""
    held = governor.get("held_seconds") or {}
    return [
        "  held (s, wall)      " + (", ".join(f"{reason} {seconds:,.1f}" for reason, seconds in held.items()
                                             if reason != "any")
                                    + f" (any reason {held.get('any', 0):,.1f})" if held else "never"),
        f"  replica lag (s)     {_figures(governor.get('lag_seconds'))}",
        f"  Threads_running     {_figures(governor.get('threads_running_figures'))}",
        f"  batch sizes (rows)  {_figures(governor.get('batch_sizes'))} over {governor.get('batches', 0):,} "
        f"batches, {governor.get('write_seconds', 0):,.1f} s writing",
    ]


def _never_granted(items: list[dict]) -> str:
    """The live ids a run never grants, and what the ones the plays decide would have granted."""
    if not items:
        return "none"
    text = f"ids {format_id_ranges(item['achievement_id'] for item in items)} (reasons: the JSON report, --help)"
    decided = [f"{item['achievement_id']} {item['file']} would grant {item['would_grant']:,}"
               for item in items if item.get("would_grant") is not None]
    return text + ("; " + ", ".join(decided) if decided else "")


def _software_line(software: dict) -> str:
    engine = software.get("engine") or {}
    nodes = software.get("nodes")
    return (f"  software            lock {str(software.get('lock_sha256') or 'none')[:12]}, "
            + ", ".join(f"{name} {engine[name]}" for name in ("python", "ray", "polars", "pyarrow") if name in engine)
            + (f"; {len(nodes)} Ray nodes on the same engine versions" if nodes else ""))


def _short(value) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value[:12])) + ("..." if len(value) > 12 else "")
    return str(value)


def report_paths(report: Path) -> dict[str, Path]:
    """The files of a run report named `report` (the JSON): json, errors (CSV), stats_only (CSV)."""
    stem = report.with_suffix("") if report.suffix == ".json" else report
    return {
        "json": report,
        "errors": stem.with_name(stem.name + ".errors.csv"),
        "stats_only": stem.with_name(stem.name + ".stats-only.csv"),
    }


def write_run_report(summary: dict, stats_only_rows: list[dict], report: Path) -> dict[str, Path]:
    """Write a run's report: the JSON summary and the two CSVs (see the module docstring).

    errors.csv columns: run_id, reason, count (scores or events with that reason in the run), table,
    score_id, user_id, beatmap_md5, detail; one row per sample. stats-only.csv columns: achievement_id,
    mode, user_id, playcount, total_hits (current user_stats). Returns the paths written.
    """
    paths = report_paths(report)
    paths["json"].parent.mkdir(parents=True, exist_ok=True)
    paths["json"].write_text(json.dumps(summary, indent=2, default=str) + "\n")
    run_id = summary.get("run_id", "")
    skipped = summary.get("skipped") or {}
    with paths["errors"].open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ERROR_COLUMNS)
        writer.writeheader()
        for row in summary.get("skip_samples") or ():
            writer.writerow({"run_id": run_id, "count": skipped.get(row["reason"], 0), **row})
        errors = summary.get("database_errors") or {}
        retries = errors.get("retries") or {}
        for sample in errors.get("samples") or ():
            writer.writerow({"run_id": run_id, "reason": "database_retry", "count": retries.get(str(sample["code"]), 0),
                             "detail": f"{sample['operation']}: error {sample['code']}: {sample['error']}"})
        reads = summary.get("reads") or {}
        for sample in reads.get("samples") or ():
            writer.writerow({"run_id": run_id, "reason": "reader_fallback",
                             "count": (reads.get("fallbacks") or {}).get(sample["reason"], 0),
                             "detail": f"{sample['reason']}" + (f": {sample['detail']}" if sample["detail"] else "")})
        for failed in errors.get("failed_shards") or ():
            writer.writerow({"run_id": run_id, "reason": "shard_failed", "count": len(errors["failed_shards"]),
                             "detail": f"shard {failed['shard']}: {failed['error']}"})
        quarantined = (summary.get("engine_crashes") or {}).get("quarantined") or ()
        for key in quarantined:
            writer.writerow({"run_id": run_id, "reason": "engine_crash_key", "count": len(quarantined),
                             "beatmap_md5": key["beatmap_md5"],
                             "detail": f"mode_vn {key['mode_vn']}, mods {key['mods']}: killed its rater twice"})
    with paths["stats_only"].open("w", newline="") as fh:
        writer = csv.DictWriter(fh, STATS_ONLY_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(stats_only_rows)
    return paths


def format_rollback(summary: dict) -> str:
    """Render a RollbackSummary dict."""
    head = (
        f"sr-backfill rollback of run {summary['target_run_id']} ({summary['target_command']}) on {summary['database']}"
        + (f" (applied as run {summary['rollback_id']})" if summary["applied"] else " (preview: nothing written; "
           "add --apply)")
    )
    lines = [
        head,
        f"  rows it inserted    {summary['to_delete']:,} still as inserted -> "
        + (f"deleted {summary['deleted']:,}" if summary["applied"] else "would be deleted"),
        (
            f"                      {summary['changed']:,} changed since (left alone), {summary['missing']:,} gone "
            f"({summary['already_undone']:,} by an earlier rollback)"
        ),
        f"  rows it deleted     {summary['to_restore']:,} restorable -> "
        + (f"restored {summary['restored']:,}" if summary["applied"] else "would be restored")
        + f", {summary['restore_blocked']:,} blocked (id or key taken; left alone)",
    ]
    if summary["applied"] and summary["skipped_now"]:
        lines.append(f"  changed meanwhile   {summary['skipped_now']:,} (left alone)")
    lines.append(f"  earned live since   {summary.get('live_affected', 0):,} of the rows to delete: the user has a passed, "
                 f"eligible score in that mode since the run started ({summary.get('live_since', 0)})"
                 + (f"; listed in {summary['live_csv']}" if summary.get("live_csv") else ""))
    regrant = summary.get("regrant")
    if regrant:
        lines.append(
            f"  granted again live  {regrant['met']:,} of {regrant['affected']:,} met by a live score "
            + (f"-> inserted {regrant['inserted']:,} as run {regrant['run_id']}"
               + (f" ({regrant['already_present']:,} present already)" if regrant["already_present"] else "")
               if regrant["applied"] else "-> would be granted (preview)")
            + f"; {regrant['not_met']:,} not met"
        )
    for sample in summary["samples"][:5]:
        lines.append(f"    e.g. row {sample['ua_id']} user {sample['user_id']} achievement {sample['achievement_id']} "
                     f"mode {sample['mode']}: {sample['why']}")
    if summary.get("governor"):
        lines += _governor_lines(summary["governor"])
    lines.append(f"  seconds             {summary['seconds']:.2f}")
    return "\n".join(lines)


def format_consolidation(summary: dict) -> str:
    """Render a ConsolidationSummary dict."""
    applied = summary["applied"]
    lines = [
        f"sr-backfill consolidate-mode7 on {summary['database']}"
        + (f" (applied as run {summary['run_id']})" if applied else " (preview: nothing written; add --apply)"),
        f"  mode 7 rows         {summary['mode7_rows']:,}",
        f"  copy to mode 8      {summary['to_copy']:,} (already held in mode 8: {summary['already_in_mode8']:,})",
    ]
    if applied:
        lines += [
            f"  backed up           {summary['backed_up']:,} (srb_mode7_backup)",
            f"  copied              {summary['copied']:,} (already present meanwhile: {summary['already_present']:,})",
        ]
        if summary["delete_mode7"]:
            lines.append(f"  verified            {'yes' if summary['verified'] else 'NO'}; mode 7 rows deleted "
                         f"{summary['deleted_mode7']:,}")
    if summary.get("governor"):
        lines += _governor_lines(summary["governor"])
    lines.append(f"  seconds             {summary['seconds']:.2f}")
    return "\n".join(lines)


def format_verify(report: dict) -> str:
    """Render a VerifyReport dict: checks, counts per achievement, the headline figure, rarity."""
    run = report["run_id"]
    lines = [
        f"sr-backfill verify on {report['database']}" + (f", run {run}" if run else ", all runs"),
        f"  duplicates          {report['duplicates']['groups']:,} (user, achievement, mode) groups",
        f"  mode 7 rows left    {report['mode7_rows']:,}",
        f"  ledger rows missing {report['ledger_missing']['rows']:,}",
        f"  unsupported grants  {report['unsupported']['unsupported']:,} of {report['unsupported']['checked']:,} "
        f"checked (star ratings {report['unsupported']['sr']})"
        + ("" if not report["unsupported"]["by_reason"] else f": {report['unsupported']['by_reason']}"),
        "",
        "  users with passed scores but zero achievements, per full mode" + (" (before -> after)" if run else ""),
    ]
    for row in report["zero_achievements"]:
        if not row["users_with_passes"]:
            continue
        lines.append(
            f"    {row['mode']} {row['name']:<15} {row['users_with_passes']:>8,} users: "
            + (f"{_share(row['zero_before'], row['users_with_passes'])} -> " if run else "")
            + _share(row["zero_after"], row["users_with_passes"])
        )
    lines += ["", "  achievements        id file                        " + ("before ->  after" if run else " count")]
    for row in report["counts"]:
        if not (row["before"] or row["after"]):
            continue
        lines.append(f"    {row['achievement_id']:>18} {row['file']:<27} "
                     + (f"{row['before']:>6,} -> {row['after']:>6,}" if run else f"{row['after']:>6,}"))
    lines += ["", "  rarity (% of users with passed scores in the mode)"]
    for row in report["rarity"]:
        if row["holders"]:
            lines.append(f"    {row['achievement_id']:>4} {row['file']:<27} mode {row['mode']}  "
                         f"{row['holders']:>6,} / {row['users_with_passes']:<6,} {row['percent']:7.3f}%")
    lines.append("")
    lines.append("  problems            " + ("; ".join(report["problems"]) if report["problems"] else "none"))
    return "\n".join(lines)


def _share(count: int, population: int) -> str:
    return f"{count:,} ({100.0 * count / population:.1f}%)"


def write_rarity_png(rarity: list[dict], path: Path, title: str = "Achievement rarity") -> Path:
    """A bar chart of rarity rows ({achievement_id, mode, percent, users_with_passes}): one panel per full
    mode, one bar per achievement (x: achievement id, y: % of users with passed scores). Returns `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = sorted({row["mode"] for row in rarity})
    panels = max(1, len(modes))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(panels, 1, figsize=(14, 0.6 + 2.0 * panels), squeeze=False)
    for ax, mode in zip(axes[:, 0], modes):
        rows = sorted((r for r in rarity if r["mode"] == mode), key=lambda r: r["achievement_id"])
        positions = list(range(len(rows)))
        ax.bar(positions, [r["percent"] for r in rows], color="#4878a8")
        ax.set_xticks(positions, [str(r["achievement_id"]) for r in rows], fontsize=6, rotation=90)
        ax.set_xlim(-1, max(len(rows), 1))
        ax.set_ylim(0, 100)
        population = rows[0]["users_with_passes"] if rows else 0
        ax.set_title(f"full mode {mode}: % of {population:,} users with passed scores", fontsize=9, loc="left")
        ax.tick_params(axis="y", labelsize=7)
    if not modes:
        axes[0, 0].text(0.5, 0.5, "no users with passed scores", ha="center", va="center")
    fig.suptitle(title, fontsize=11)
    fig.subplots_adjust(left=0.05, right=0.99, top=1 - 0.5 / (0.6 + 2.0 * panels), bottom=0.04, hspace=0.65)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
