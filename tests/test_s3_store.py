"""The .osu store on S3 (pyarrow.fs), against an S3-compatible server on loopback (moto's server mode)."""

import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import polars as pl
import pyarrow.fs as pafs
import pytest

from jobs.cli import main
from sr.errors import BeatmapMissing
from sr.fetch import BeatmapFetcher
from sr.store import OsuStore
from testbed.demo import build_demo_database
from tests.conftest import MAPS, free_port

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def s3_env():
    """A moto S3 server on 127.0.0.1 and the usual AWS variables pointing at it."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    env = {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    s3 = pafs.S3FileSystem(
        access_key=env["AWS_ACCESS_KEY_ID"], secret_key=env["AWS_SECRET_ACCESS_KEY"], region="us-east-1",
        endpoint_override=f"127.0.0.1:{port}", scheme="http", allow_bucket_creation=True,
    )
    s3.create_dir("osu")
    try:
        yield env, s3
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.terminate()
        server.wait(10)


def upload(s3: pafs.S3FileSystem, local_dir: Path, prefix: str) -> None:
    for path in local_dir.glob("*.osu"):
        with s3.open_output_stream(f"{prefix}/{path.name}") as stream:
            stream.write(path.read_bytes())


def test_reads_checks_and_reports_missing_on_s3(s3_env):
    _, s3 = s3_env
    content = (MAPS / "rosu-pp" / "2785319.osu").read_bytes()
    with s3.open_output_stream("osu/unit/2785319.osu") as stream:
        stream.write(content)
    store = OsuStore("s3://osu/unit")
    assert store.load(2785319, hashlib.md5(content).hexdigest()) == content
    with pytest.raises(BeatmapMissing):
        store.load(1, "0" * 32)


def test_fetched_file_is_saved_to_s3(s3_env, tmp_path):
    """A download lands in the S3 store, so every node sees it."""
    _, s3 = s3_env
    content = (MAPS / "rosu-pp" / "1028484.osu").read_bytes()
    # the HTTP side is tested against a real server in test_fetch; here only where the file lands
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=content))
    fetcher = BeatmapFetcher("http://mirror.invalid/osu/{beatmap_id}", rate=100, transport=transport)
    store = OsuStore("s3://osu/fetched", fetcher)
    assert store.load(1028484, hashlib.md5(content).hexdigest()) == content
    with s3.open_input_stream("osu/fetched/1028484.osu") as stream:
        assert stream.read() == content


@pytest.mark.ray
def test_backfill_reads_osu_files_from_s3_like_from_a_directory(s3_env, tmp_path, ray_session):
    env, s3 = s3_env
    osu_dir = tmp_path / "osu"
    osu_dir.mkdir()
    db_url = f"sqlite:///{tmp_path / 'demo.db'}"
    build_demo_database(db_url, osu_dir, MAPS, users=40, seed=5)
    upload(s3, osu_dir, "osu/beatmaps")

    assert main(["run", "--db", db_url, "--osu-dir", str(osu_dir), "--out", str(tmp_path / "local.parquet"), "--no-progress"]) == 0
    # a separate process with its own local Ray: its workers inherit the AWS variables, as on a cluster
    proc = subprocess.run(
        [str(BIN / "sr-backfill"), "run", "--db", db_url, "--osu-dir", "s3://osu/beatmaps", "--workers", "2",
         "--out", str(tmp_path / "s3.parquet"), "--report", str(tmp_path / "s3.json"), "--no-progress"],
        env={**os.environ, **env, "RAY_ADDRESS": ""}, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    local = pl.read_parquet(tmp_path / "local.parquet").sort(pl.all())
    remote = pl.read_parquet(tmp_path / "s3.parquet").sort(pl.all())
    assert local.height > 100 and local.equals(remote)
    assert "testing-secret" not in proc.stdout + proc.stderr
