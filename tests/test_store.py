"""The .osu store: md5 check, header check, missing files."""

import hashlib
import shutil

import pytest

from sr.errors import BeatmapBadFormat, BeatmapMismatch, BeatmapMissing
from sr.store import OsuStore, has_osu_header
from tests.conftest import MAPS

REAL = MAPS / "rosu-pp" / "2785319.osu"


@pytest.fixture()
def store(tmp_path):
    shutil.copy(REAL, tmp_path / "2785319.osu")
    return OsuStore(tmp_path)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_loads_a_file_whose_md5_matches(store):
    content = REAL.read_bytes()
    assert store.load(2785319, md5(content)) == content


def test_md5_is_compared_case_insensitively(store):
    content = REAL.read_bytes()
    assert store.load(2785319, md5(content).upper()) == content


def test_missing_file(store):
    with pytest.raises(BeatmapMissing) as err:
        store.load(1, "0" * 32)
    assert err.value.beatmap_md5 == "0" * 32 and err.value.reason == "missing_file"


def test_stale_file_is_a_mismatch(store):
    with pytest.raises(BeatmapMismatch) as err:
        store.load(2785319, "f" * 32)
    assert err.value.reason == "md5_mismatch"


@pytest.mark.parametrize("content", [b"", b"garbage\x00\x01", b"[General]\nMode: 0\n", b"osu file format"])
def test_headerless_or_empty_file_is_bad_format(tmp_path, content):
    (tmp_path / "5.osu").write_bytes(content)
    with pytest.raises(BeatmapBadFormat):
        OsuStore(tmp_path).load(5, md5(content))


@pytest.mark.parametrize(
    "content",
    [b"osu file format v14\n", b"\xef\xbb\xbfosu file format v14\n", b"\r\n  \tosu file format v3\n"],
)
def test_header_allows_bom_and_leading_whitespace(content):
    assert has_osu_header(content)


def test_file_uri_reads_like_a_path(tmp_path):
    shutil.copy(REAL, tmp_path / "2785319.osu")
    content = REAL.read_bytes()
    assert OsuStore(tmp_path.as_uri()).load(2785319, md5(content)) == content
