"""Writing output files the safe way: a temp file beside the target, then one rename.

Every file bpfpatch writes (objects, raw bytes, listings, benchmark JSON and
charts) goes through here, so that:

* a failing command leaves no partial output and no temp file behind, and every
  failure is one `FileError` naming the path and the reason (missing directory,
  output path is a directory, read-only file system, full disk, no permission);
* the file gets the mode a plain ``open(path, "w")`` would give it: the mode of
  the file it replaces, or ``0o666`` less the umask (the kernel applies the
  umask: the temp file is created with ``0o666``);
* a temp file left by a run that was killed mid-write (SIGKILL, power loss) is
  recognizable by its name (``.NAME.bpfpatch-PID-XXXXXXXX.tmp``) and removed by
  the next write to the same directory once its process is gone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import time
from pathlib import Path
from typing import Iterator

from bpfpatch.errors import FileError

#: The marker in every temp file name; `remove_stale_temps` recognizes only names with it.
TEMP_MARK = ".bpfpatch-"
_TEMP_NAME = re.compile(r"^\..*\.bpfpatch-(\d+)-[0-9a-f]{8}\.tmp$")
#: A temp file older than this is stale even if a process with its pid exists (the pid was reused).
STALE_SECONDS = 3600.0


def temp_name(path: Path) -> Path:
    """A fresh temp path beside `path`: hidden, marked with this process's pid."""
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}-{os.urandom(4).hex()}.tmp")


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def remove_stale_temps(directory: Path | str) -> list[Path]:
    """Remove temp files of interrupted runs in `directory`; return what was removed.

    A temp file is stale when the process that made it is gone, or when it is
    older than `STALE_SECONDS`.  Failures (a read-only directory, a file some
    other process removed first) are ignored: cleaning up is best effort.
    """
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_NAME.match(entry.name)
        if m is None:
            continue
        pid = int(m.group(1))
        try:
            if pid == os.getpid() and now - entry.stat(follow_symlinks=False).st_mtime < STALE_SECONDS:
                continue
            if not _process_gone(pid) and now - entry.stat(follow_symlinks=False).st_mtime < STALE_SECONDS:
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _check_target(path: Path) -> None:
    """Refuse, before any temp file exists, what cannot become `path`."""
    parent = path.parent
    if path.name in ("", ".", ".."):
        raise FileError(path, "not a file name")
    if not parent.exists():
        raise FileError(path, f"directory {parent} does not exist")
    if not parent.is_dir():
        raise FileError(path, f"{parent} is not a directory")
    if path.is_dir():
        raise FileError(path, "is a directory")


def output_mode(path: Path) -> int | None:
    """The permission bits of the file `path` replaces, or None for a new file (0o666 less the umask)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else None


def _create_temp(path: Path) -> tuple[int, Path]:
    mode = output_mode(path)
    for _ in range(16):
        tmp = temp_name(path)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise FileError(path, f"cannot create a file in {path.parent}: {_reason(exc)}") from exc
        try:
            if mode is not None:
                os.fchmod(fd, mode)
        except OSError:
            pass  # the replaced file's mode is a courtesy; a new file's umask mode stands
        return fd, tmp
    raise FileError(path, "cannot create a temp file beside it")


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """A temp path beside `path` to write into; renamed onto `path` when the block succeeds.

    On any exception the temp file is removed and `path` is left as it was; an
    `OSError` of the block or the rename becomes a `FileError` naming `path`.
    """
    path = Path(path)
    _check_target(path)
    remove_stale_temps(path.parent)
    fd, tmp = _create_temp(path)
    os.close(fd)
    try:
        try:
            yield tmp
            os.replace(tmp, path)
        except OSError as exc:
            raise FileError(path, _reason(exc)) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_atomic(path: Path | str, data: bytes | bytearray | memoryview) -> None:
    """Write `data` to `path` atomically: all of it or nothing, the input never touched.

    Raises `FileError` naming `path` and the reason; no temp file is left.
    """
    path = Path(path)
    _check_target(path)
    remove_stale_temps(path.parent)
    fd, tmp = _create_temp(path)
    try:
        try:
            view = memoryview(data).cast("B")
            while view:
                n = os.write(fd, view)
                if n == 0:  # pragma: no cover - write(2) returns 0 only for a zero count
                    raise OSError(errno.EIO, "short write")
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise FileError(path, _reason(exc)) from exc
        raise


__all__ = ["FileError", "STALE_SECONDS", "TEMP_MARK", "atomic_path", "output_mode", "remove_stale_temps",
           "temp_name", "write_atomic"]
