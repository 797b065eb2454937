"""How Ray workers find the database URL without it ever travelling with the work.

Task and actor arguments are pickled into Ray's task specifications and object store (which spills to
disk under the Ray session directory), so the URL, password included, must not be one of them. A
worker gets it from its own side instead, and a job names only where to look (`DatabaseRef`):

1. a private file the driver writes for the workers on its own host (`shared_with_workers`: mode 0600
   in a 0700 directory outside Ray's directories: $SR_BACKFILL_RUNTIME_DIR, else
   $XDG_RUNTIME_DIR/sr-backfill, else ~/.sr-backfill/run, else a new one in the system's temporary
   directory; removed when the run ends, or by the next run on the host if the driver was killed);
2. the worker's environment, $SR_BACKFILL_DB (on a cluster, `ray start` exports it on every node from
   ~/.sr-backfill/db.env: ray-cluster.yaml);
3. ~/.sr-backfill/db.env itself (`SR_BACKFILL_DB=...`, shell syntax).

The first URL found that names the driver's database (the same URL once the password is masked) is
used; none: ConfigError. The job itself carries only the masked URL.
"""

from __future__ import annotations

import os
import shlex
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cluster.db import mask_url
from cluster.errors import ConfigError

DB_ENV = "SR_BACKFILL_DB"
DB_FILE = "~/.sr-backfill/db.env"
RUNTIME_DIR_ENV = "SR_BACKFILL_RUNTIME_DIR"

def read_env_file(path: str | Path, name: str = DB_ENV) -> str | None:
    """The value of `name` in a shell-style env file (`NAME=value` or `export NAME='value'` lines, `#`
    comments), or None when the file or the name is missing."""
    try:
        text = Path(path).expanduser().read_text()
    except OSError:
        return None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        if not line.startswith(f"{name}="):
            continue
        value = line[len(name) + 1:]
        try:
            parts = shlex.split(value, comments=True)
        except ValueError:
            return value.strip() or None
        return parts[0] if parts else None
    return None


@dataclass(frozen=True, slots=True)
class DatabaseRef:
    """Where a worker finds the database URL (see the module docstring), never the URL itself.

    masked: the URL with its password masked (cluster.db.mask_url): names the database in messages and
            tells a worker which URL is the driver's.
    file:   a private env file the driver wrote on its host, or None.
    env:    the environment variable workers read.
    """

    masked: str
    file: str | None = None
    env: str = DB_ENV

    def resolve(self) -> str:
        """The database URL, from this process's side. Raises ConfigError (masked) when no file or
        variable here names the driver's database."""
        seen = []
        for where, candidate in (
            (self.file, read_env_file(self.file, self.env) if self.file else None),
            (f"${self.env}", os.environ.get(self.env)),
            (DB_FILE, read_env_file(DB_FILE, self.env)),
        ):
            if not candidate:
                continue
            if mask_url(candidate) == self.masked:
                return candidate
            seen.append(f"{where} names {mask_url(candidate)}")
        found = "; ".join(seen) if seen else f"no ${self.env} and no {DB_FILE} here"
        raise ConfigError(f"this worker has no URL for the database {self.masked} ({found})")


def runtime_dir() -> Path:
    """The private directory for files shared with workers on this host (see the module docstring)."""
    if os.environ.get(RUNTIME_DIR_ENV):
        return Path(os.environ[RUNTIME_DIR_ENV])
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "sr-backfill"
    return Path("~/.sr-backfill/run").expanduser()


def _remove_orphans(directory: Path) -> None:
    """Remove the copies left by drivers that were killed (their pid, in the file name, is gone)."""
    for path in directory.glob("db-*-*.env"):
        try:
            pid = int(path.name.split("-")[1])
            os.kill(pid, 0)
        except ValueError:
            continue
        except ProcessLookupError:
            path.unlink(missing_ok=True)
        except PermissionError:  # alive, another user's
            continue


@contextmanager
def shared_with_workers(url: str) -> Iterator[DatabaseRef]:
    """Write `url` to a private file (0600, in a 0700 directory) for the workers on this host and yield
    the DatabaseRef naming it; the file is removed when the block ends. Workers elsewhere use their own
    environment (DatabaseRef.resolve)."""
    try:
        directory = runtime_dir()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
    except OSError:  # no writable home: a private directory of its own in the system's temporary directory
        directory = Path(tempfile.mkdtemp(prefix="sr-backfill-"))  # mode 0700
    _remove_orphans(directory)
    descriptor, path = tempfile.mkstemp(prefix=f"db-{os.getpid()}-", suffix=".env", dir=directory)  # mode 0600
    try:
        with os.fdopen(descriptor, "w") as fh:
            fh.write(f"{DB_ENV}={shlex.quote(url)}\n")
        yield DatabaseRef(mask_url(url), path)
    finally:
        Path(path).unlink(missing_ok=True)
