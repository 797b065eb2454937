"""Retries with backoff on lost connections, deadlocks and lock-wait timeouts; shard plans of scoped runs."""

import pymysql
import pytest
import sqlalchemy as sa

from cluster.db import RetryLog, RetryPolicy, is_retryable, retrying
from cluster.errors import DatabaseUnavailable
from cluster.shards import plan_shards

FAST = RetryPolicy(attempts=4, base_seconds=0.001)


def failure(code: int, message: str = "boom") -> sa.exc.OperationalError:
    return sa.exc.OperationalError("INSERT ...", {}, pymysql.err.OperationalError(code, message))


@pytest.mark.parametrize("code", [2006, 2013, 1205, 1213, 2003])
def test_retryable_errors_are_retried_until_success(code):
    calls = []

    def operation():
        calls.append(1)
        if len(calls) < 3:
            raise failure(code, "mysql+pymysql://u:hunter2-secret@db/x went away")
        return "done"

    log = RetryLog()
    assert retrying(operation, "op", FAST, log, "mysql+pymysql://u:hunter2-secret@db/x") == "done"
    assert len(calls) == 3 and log.counts == {code: 2}
    assert all("hunter2-secret" not in s["error"] for s in log.samples)


def test_other_errors_are_not_retried_and_exhaustion_raises_our_error():
    calls = []

    def duplicate():
        calls.append(1)
        raise sa.exc.IntegrityError("INSERT ...", {}, pymysql.err.IntegrityError(1062, "Duplicate entry"))

    with pytest.raises(sa.exc.IntegrityError):
        retrying(duplicate, "op", FAST)
    assert len(calls) == 1 and not is_retryable(failure(1045))

    def always():
        raise failure(1213, "Deadlock found")

    with pytest.raises(DatabaseUnavailable) as caught:
        retrying(always, "write batch 3", FAST)
    assert (caught.value.code, caught.value.attempts, caught.value.operation) == (1213, 4, "write batch 3")
    assert isinstance(caught.value.__cause__, sa.exc.OperationalError)


def test_backoff_doubles_and_is_capped():
    policy = RetryPolicy(attempts=10, base_seconds=1.0, max_seconds=5.0)
    assert 0.75 <= policy.delay(1) <= 1.25 and 1.5 <= policy.delay(2) <= 2.5 and 3.75 <= policy.delay(9) <= 6.25


def test_scoped_plans_list_their_users_and_keep_ranges():
    rows = {3: 5, 10: 5, 11: 1, 40: 9, 41: 2}
    plain = plan_shards(rows, 10)
    scoped = plan_shards(rows, 10, explicit_users=True)
    assert [(s.user_lo, s.user_hi, s.rows) for s in plain] == [(s.user_lo, s.user_hi, s.rows) for s in scoped]
    assert [s.user_ids for s in scoped] == [(3, 10), (11, 40), (41,)] and all(s.user_ids is None for s in plain)
