"""The same software on every node: one lock file with hashes that `make install`, the cluster configs and
the RayJob image all install from; a run records the lock's digest and the engine versions, and refuses
to start when a Ray node reports other engine versions than the driver (cluster.software)."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from importlib import metadata

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from cluster import software
from cluster.errors import SoftwareMismatch
from tests import operations as op
from tests.conftest import REPO

LOCK = REPO / "requirements.lock"


def locked() -> dict[str, str]:
    """name -> version of every requirement in the lock, checking each is pinned with hashes."""
    pins: dict[str, str] = {}
    text = LOCK.read_text()
    for block in re.split(r"\n(?=\S)", text):
        head = block.splitlines()[0]
        if head.startswith("#") or not head.strip():
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s\\]+) \\", head)
        assert match, f"not pinned exactly: {head!r}"
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", block), f"no hash for {head!r}"
        pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def test_the_lock_pins_every_dependency_with_hashes_and_this_venv_runs_it():
    pins = locked()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"] + project["optional-dependencies"]["test"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in the lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (line, pins[name])
    assert pins["rosu-pp-py"] == "2.0.1" and pins["akatsuki-pp-py"] == "1.0.1"
    assert {"pip", "setuptools"} <= set(pins)  # the installers are locked too
    installed = {name: metadata.version(name) for name in software.ENGINE_PACKAGES}
    assert installed == {name: pins[canonicalize_name(name)] for name in software.ENGINE_PACKAGES}


def test_make_install_the_cluster_configs_and_the_image_install_from_the_lock():
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^\$\(STAMP\): \$\(LOCK\)", makefile, re.M) and "LOCK   := requirements.lock" in makefile
    assert "pip install --quiet --require-hashes -r $(LOCK)" in makefile
    assert "--no-deps --no-build-isolation -e ." in makefile and "'.[test]'" not in makefile
    for config in ("ray-cluster.yaml", "deploy/ray-cluster.aws.yaml"):
        commands = " && ".join(yaml.safe_load((REPO / config).read_text())["setup_commands"])
        installs = re.findall(r"pip install[^&;]*", commands)
        assert any("--require-hashes -r ~/sr-backfill/requirements.lock" in c for c in installs), config
        assert all("--require-hashes" in c or "--no-deps" in c for c in installs), (config, installs)
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert "--require-hashes -r requirements.lock" in dockerfile and "--no-deps" in dockerfile
    assert "deploy/Dockerfile" in (REPO / "deploy" / "rayjob.yaml").read_text()
    assert "srb-cache/" in (REPO / ".gitignore").read_text().splitlines()


def test_version_differences_name_each_node_and_package():
    driver = {"python": "3.11", "polars": "1.31.0", "pyarrow": "20.0.0"}
    reports = [
        {"address": "10.0.0.6", "engine": dict(driver)},
        {"address": "10.0.0.5", "engine": {**driver, "polars": "1.30.0", "pyarrow": "missing"}},
    ]
    assert software.version_differences(driver, reports) == [
        "node 10.0.0.5: polars 1.30.0 (driver 1.31.0)", "node 10.0.0.5: pyarrow missing (driver 20.0.0)"]
    assert software.version_differences(driver, reports[:1]) == []
    error = SoftwareMismatch(software.version_differences(driver, reports))
    assert "polars 1.30.0 (driver 1.31.0)" in str(error) and "requirements.lock" in str(error)


@pytest.mark.ray
def test_every_ray_node_reports_its_versions(ray_session):
    reports = software.check_nodes()
    alive = [n for n in ray_session.nodes() if n["Alive"]]
    assert len(reports) == len(alive) >= 1
    assert all(r["engine"] == software.engine_versions() for r in reports)
    assert {r["node_id"] for r in reports} == {n["NodeID"] for n in alive}
    with pytest.raises(SoftwareMismatch, match=r"polars \S+ \(driver 0\.0\.1\)"):
        software.check_nodes({**software.engine_versions(), "polars": "0.0.1"})


@pytest.mark.db
@pytest.mark.ray
def test_a_run_records_its_software_and_refuses_nodes_on_other_versions(tmp_path, ray_session, scenario_db,
                                                                        monkeypatch, capsys):
    url, osu_dir = scenario_db
    real = software.engine_versions()
    monkeypatch.setattr(software, "engine_versions", lambda: {**real, "pyarrow": "0.0.1"})  # the driver only
    code, _ = op.run(url, osu_dir, tmp_path, "mixed", "--user-id", "1001")
    err = capsys.readouterr().err
    assert code == 2 and f"pyarrow {real['pyarrow']} (driver 0.0.1)" in err, err
    monkeypatch.undo()

    code, report = op.run(url, osu_dir, tmp_path, "recorded", "--apply", "--run-id", "recorded", "--user-id", "1001")
    assert code == 0
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    (config, summary), = op.query(url, "SELECT config, summary FROM srb_runs WHERE run_id = 'recorded'")
    stored = json.loads(config)["software"]
    assert stored == {"lock_sha256": digest, "engine": real}
    recorded = json.loads(summary)["software"]
    assert recorded["lock_sha256"] == digest and recorded["engine"] == real
    assert len(recorded["nodes"]) >= 1 and report["software"] == recorded
