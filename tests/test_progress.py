"""What a run shows while it executes (cluster.progress), without Ray or a database: the progress line's
figures and state, the bar's state with a terminal, the ETA."""

from __future__ import annotations

import re

from cluster.governor import Sources, WriteGovernor, WriteLimits
from cluster.progress import Progress, Reporter, describe_state


class Bar:
    """Stands in for the tqdm bar: keeps the postfix set on it."""

    postfix = None

    def set_postfix_str(self, text, refresh=True):
        self.postfix = text


def test_progress_line_names_the_figures_and_the_governors_state(capsys):
    progress = Progress("run-7", planned=10, before=2, pending=8)
    progress.started -= 20  # 20 s into the session
    progress.shard_done(rows_read=4000, grants=30, skipped={"missing_file": 1}, retries={})
    progress.shard_done(rows_read=6000, grants=20, skipped={}, retries={1213: 1})
    governor = WriteGovernor(WriteLimits(max_lag=10.0), Sources(replicas=("replica:3306",)))
    governor.observe_lag("replica:3306", 31.2)
    reporter = Reporter(progress, governor, lines=True, interval=10.0)
    snapshot = reporter.tick()
    line = capsys.readouterr().err.strip()
    assert re.fullmatch(r"sr-backfill run-7 \d\d:\d\d:\d\d shards 4/10, scores 10,000 \(500/s\), grants 0 "
                        r"\(0/s last min\), ETA 1m00s: throttled: lag=31\.2s > 10s on replica:3306", line), line
    assert snapshot["eta_seconds"] == 60.0 and snapshot["governor"]["lag"] == {"replica:3306": 31.2}
    reporter.tick()  # within the interval: no second line
    assert capsys.readouterr().err == ""
    assert reporter.tick(force_line=True)["shards_done"] == 4 and "sr-backfill run-7" in capsys.readouterr().err


def test_with_a_terminal_the_bar_shows_the_state():
    bar = Bar()
    governor = WriteGovernor(WriteLimits(paused=True))
    Reporter(Progress("r", 1, 0, 1), governor, bar=bar).tick()
    assert bar.postfix == "paused: paused by operator"
    governor.set_limits(WriteLimits())
    Reporter(Progress("r", 1, 0, 1), governor, bar=bar).tick()
    assert bar.postfix == "writing"


def test_states_without_a_governor_and_eta_before_the_first_shard():
    assert describe_state(None, apply=False) == "dry run"
    assert describe_state(None, apply=True) == "ungoverned"
    figures = Progress("r", planned=5, before=0, pending=5).figures()
    assert figures["eta_seconds"] is None and figures["shards_done"] == 0
