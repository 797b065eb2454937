"""testbed.errors: every leaf keeps the base its callers catch (jobs/cli.py), and says what failed."""

from __future__ import annotations

from cluster.errors import ClusterError, ConfigError
from testbed.errors import (
    BulkLoadError,
    DemoDatabaseNotEmpty,
    IndexDropFailed,
    IndexRestoreFailed,
    RowsNotStored,
    TargetNotEmpty,
    TestbedError,
)


def test_leaves_keep_the_bases_callers_catch():
    target = TargetNotEmpty("mysql+pymysql://u:secret@h/db", {"scores": 3})
    assert isinstance(target, (TestbedError, ConfigError)) and target.tables == {"scores": 3}
    assert "secret" not in str(target) and "already holds rows in scores (3 rows)" in str(target)
    demo = DemoDatabaseNotEmpty("sqlite:///x.db", {"users": 2, "scores": 5})
    assert isinstance(demo, (TestbedError, RuntimeError)) and not isinstance(demo, ClusterError)
    assert "built fresh" in str(demo) and "users (2 rows), scores (5 rows)" in str(demo)
    for error in (RowsNotStored("scores", 9, 10, 1, ["Warning 1062 Duplicate entry"]),
                  IndexDropFailed("scores", "denied"), IndexRestoreFailed("scores", ["KEY `a` (`b`)"], "denied")):
        assert isinstance(error, BulkLoadError) and isinstance(error, ClusterError)
        assert not isinstance(error, ConfigError)
        assert error.table == "scores" and str(error).startswith("scores: ")
    assert str(RowsNotStored("scores", 9, 10, 1, ["w"])) == "scores: LOAD DATA stored 9 of 10 rows with 1 warning(s): w"
