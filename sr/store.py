"""The .osu store: one file per beatmap, `{beatmap_id}.osu`, checked against the score's md5.

Older Akatsuki tools kept a local directory of `{beatmap_id}.osu`; production keeps the same layout in
S3 (`/beatmaps/{beatmap_id}.osu`, beatmaps-service). The store is opened through pyarrow.fs, so a local
path and a filesystem URI (`file:///...`, `s3://bucket/prefix`) read alike.

A file is used for a score only if its md5 equals the score's beatmap_md5 (a score must be rated
against the version of the map it was set on) and it starts with the `osu file format v` header (a
UTF-8 BOM and leading whitespace allowed). The hit-object check needs a parse and lives in the engine.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow.fs as pafs

from sr.errors import BeatmapBadFormat, BeatmapMismatch, BeatmapMissing

HEADER = b"osu file format v"
_BOM = b"\xef\xbb\xbf"


def has_osu_header(content: bytes) -> bool:
    """True if `content` starts with `osu file format v` after an optional UTF-8 BOM and whitespace."""
    body = content[len(_BOM):] if content.startswith(_BOM) else content
    return body.lstrip().startswith(HEADER)


class OsuStore:
    """Read-only access to `{beatmap_id}.osu` files under one root (local path or pyarrow.fs URI)."""

    def __init__(self, location: str | Path, fetcher=None) -> None:
        """`fetcher` (sr.fetch.BeatmapFetcher, optional) downloads a missing or stale file, which is
        kept (written to the store) only when its md5 is the one asked for."""
        location = str(location)
        self.fetcher = fetcher
        self.saved = 0
        if "://" in location:
            self.filesystem, self.root = pafs.FileSystem.from_uri(location)
        else:
            self.filesystem, self.root = pafs.LocalFileSystem(), str(Path(location).resolve())
        self.location = location

    def path_of(self, beatmap_id: int) -> str:
        """The store path of a beatmap's file."""
        return f"{self.root.rstrip('/')}/{int(beatmap_id)}.osu"

    def read(self, beatmap_id: int) -> bytes:
        """The raw bytes of `{beatmap_id}.osu`. Raises BeatmapMissing (with md5 "") if absent."""
        try:
            with self.filesystem.open_input_stream(self.path_of(beatmap_id)) as stream:
                return stream.read()
        except FileNotFoundError as exc:
            raise BeatmapMissing("", f"no file {beatmap_id}.osu") from exc

    def load(self, beatmap_id: int, beatmap_md5: str) -> bytes:
        """The file of `beatmap_id`, checked to be the version `beatmap_md5` with an .osu header.

        With a fetcher, a missing or stale file is downloaded first (see sr.fetch). Raises
        BeatmapMissing (no file), BeatmapMismatch (md5 differs: the map was updated since the score),
        BeatmapBadFormat (no `osu file format v` header, e.g. an empty or corrupt file).
        """
        try:
            content = self.read(beatmap_id)
        except BeatmapMissing as exc:
            if self.fetcher is None:
                raise BeatmapMissing(beatmap_md5, exc.detail) from exc.__cause__
            content = self._fetch(beatmap_id, beatmap_md5)
        digest = hashlib.md5(content).hexdigest()
        if digest != beatmap_md5.lower():
            if self.fetcher is None:
                raise BeatmapMismatch(beatmap_md5, f"{beatmap_id}.osu has md5 {digest}")
            content = self._fetch(beatmap_id, beatmap_md5)
        if not has_osu_header(content):
            raise BeatmapBadFormat(beatmap_md5, f"{beatmap_id}.osu has no 'osu file format v' header")
        return content

    def _fetch(self, beatmap_id: int, beatmap_md5: str) -> bytes:
        """Download the version `beatmap_md5` and save it as `{beatmap_id}.osu` (write, then move)."""
        content = self.fetcher.fetch(beatmap_id, beatmap_md5)
        path = self.path_of(beatmap_id)
        partial = f"{path}.{beatmap_md5}.partial"
        with self.filesystem.open_output_stream(partial) as stream:
            stream.write(content)
        self.filesystem.move(partial, path)
        self.saved += 1
        return content
