"""The human-readable run summary (the --report JSON holds the same figures)."""

from __future__ import annotations

FAMILY_LABELS = {
    "skill_pass": "skill pass",
    "skill_fc": "skill FC",
    "combo": "combo",
    "playcount": "play count",
    "hits": "hits",
    "mod_intro": "mod intro",
}


def format_summary(summary: dict) -> str:
    """Render a RunSummary dict as an aligned text block."""
    lines = [
        f"sr-backfill run on {summary['database']} ({'dry run' if summary['dry_run'] else 'applied'})",
        f"  engine              {summary['engine'].get('name', '?')} ({summary['engine'].get('version', '?')})",
        f"  workers / shards    {summary['workers']} / {summary['shards']}",
        "  rows read           " + ", ".join(f"{name} {count:,}" for name, count in summary["rows_read"].items()),
        f"  eligible scores     {summary['eligible_scores']:,}",
        "  not eligible        " + ", ".join(f"{reason} {count:,}" for reason, count in summary["ineligible"].items()),
        f"  unique SR keys      {summary['sr_keys']:,}",
        f"  SR calculations     {summary['sr_calculations']:,}",
        "  SR errors (keys)    " + ", ".join(f"{reason} {count:,}" for reason, count in summary["sr_errors"].items()),
        f"  scores without SR   {summary['scores_without_sr']:,}",
        f"  grants              {summary['grants'].get('total', 0):,} (already held, skipped: {summary['already_held']:,})",
        "    by family         "
        + ", ".join(f"{FAMILY_LABELS[f]} {n:,}" for f, n in summary["grants"].get("by_family", {}).items()),
        "    by full mode      "
        + ", ".join(f"{mode}: {n:,}" for mode, n in summary["grants"].get("by_full_mode", {}).items()),
        f"  grants written      {summary['grants_written']:,}" + (f"  (file: {summary['out']})" if summary["out"] else ""),
        "  seconds             " + ", ".join(f"{stage} {value:.2f}" for stage, value in summary["seconds"].items()),
    ]
    return "\n".join(lines)
