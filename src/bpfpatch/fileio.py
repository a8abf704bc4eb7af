"""Writing output files the safe way: a temp file beside the target, then one rename.

Every file bpfpatch writes (objects, raw bytes, listings, benchmark JSON and
charts) goes through here, so that a failing command leaves no partial output
and no temp file behind, and the file gets the mode a plain ``open(path, "w")``
would give it: the mode of the file it replaces, or ``0o666`` less the umask.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Iterator


def _current_umask() -> int:
    """The process umask (read by setting and restoring it: there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def output_mode(path: Path) -> int:
    """The permission bits `path` should get: those of the file it replaces, else 0o666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_current_umask()


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """A temp path beside `path` to write into; renamed onto `path` when the block succeeds.

    On any exception the temp file is removed and `path` is left as it was.
    """
    path = Path(path)
    mode = output_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent if str(path.parent) else ".")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_atomic(path: Path | str, data: bytes) -> None:
    """Write `data` to `path` atomically: all of it or nothing, the input never touched."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
