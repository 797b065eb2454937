"""The software a run runs on: the lock file's digest and the engine packages' versions, on the driver and
on every Ray node.

Every machine installs from `requirements.lock` (pinned, with hashes: `make install`, the cluster configs'
setup commands, deploy/Dockerfile). Nodes set up on different days from different locks could still run
different polars or pyarrow versions, which changes results quietly (Ray itself refuses mixed Ray
versions). So a run records the lock's digest and the engine versions (`software_record`) and, before any
rater or shard starts, asks one tiny task pinned to each alive node for its versions (`check_nodes`); any
difference stops it with SoftwareMismatch.
"""

from __future__ import annotations

import hashlib
import sys
from importlib import metadata
from pathlib import Path

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from cluster.errors import SoftwareMismatch

LOCK_FILE = Path(__file__).resolve().parents[1] / "requirements.lock"
# The packages whose version can change what a run computes or whether its nodes work together.
ENGINE_PACKAGES = (
    "ray", "polars", "polars-runtime-32", "pyarrow", "numpy", "numba", "connectorx", "rosu-pp-py", "sqlalchemy",
    "pymysql",
)
NODE_TIMEOUT_S = 120.0


def engine_versions() -> dict[str, str]:
    """This process's Python (major.minor) and the installed version of each ENGINE_PACKAGES ("missing"
    when not installed)."""
    versions = {"python": f"{sys.version_info.major}.{sys.version_info.minor}"}
    for name in ENGINE_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def lock_digest(path: Path = LOCK_FILE) -> str | None:
    """The sha256 (hex) of the lock file as this checkout has it; None without one."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def software_record() -> dict:
    """What a run records about the software it runs on: {lock_sha256, engine: engine_versions()}."""
    return {"lock_sha256": lock_digest(), "engine": engine_versions()}


@ray.remote(num_cpus=0)
def _node_software() -> dict:
    return {"node_id": ray.get_runtime_context().get_node_id(), **software_record()}


def node_software(timeout_s: float = NODE_TIMEOUT_S) -> list[dict]:
    """{node_id, address, lock_sha256, engine} of every alive node of the connected Ray cluster, each
    reported by a task pinned to that node (its worker processes' environment)."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    refs = [
        _node_software.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote()
        for n in nodes
    ]
    reports = ray.get(refs, timeout=timeout_s)
    return [{**report, "address": node.get("NodeManagerAddress", "?")} for node, report in zip(nodes, reports)]


def version_differences(expected: dict[str, str], reports: list[dict]) -> list[str]:
    """One line per (node, package) whose engine version differs from `expected` (the driver's), e.g.
    "node 10.0.0.5: polars 1.30.0 (driver 1.31.0)"; empty when every node agrees."""
    lines = []
    for report in sorted(reports, key=lambda r: r["address"]):
        theirs = report["engine"]
        for name in sorted(set(expected) | set(theirs)):
            if theirs.get(name, "missing") != expected.get(name, "missing"):
                lines.append(f"node {report['address']}: {name} {theirs.get(name, 'missing')} "
                             f"(driver {expected.get(name, 'missing')})")
    return lines


def check_nodes(expected: dict[str, str] | None = None, timeout_s: float = NODE_TIMEOUT_S) -> list[dict]:
    """Every alive node's software (`node_software`), after checking that each runs the engine versions
    `expected` (default: this driver's). Raises SoftwareMismatch naming each difference, or naming the
    nodes that did not answer within `timeout_s`."""
    expected = engine_versions() if expected is None else expected
    try:
        reports = node_software(timeout_s)
    except ray.exceptions.GetTimeoutError:
        raise SoftwareMismatch([f"some node did not report its versions within {timeout_s:.0f} s"]) from None
    differences = version_differences(expected, reports)
    if differences:
        raise SoftwareMismatch(differences)
    return reports
