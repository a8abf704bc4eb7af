"""Output and input helpers of the commands: the library's one atomic writer, and errors named by file."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from bpfpatch.errors import BpfPatchError, FileError
from bpfpatch.fileio import write_atomic


@contextlib.contextmanager
def reading(path: Path | str) -> Iterator[None]:
    """Errors raised while reading `path` name it first: ``x.o: section .BTF, offset 0x10: ...``."""
    try:
        yield
    except BpfPatchError as exc:
        if not isinstance(exc, FileError) and exc.args and not str(exc).startswith(str(path)):
            exc.args = (f"{path}: {exc.args[0]}",) + exc.args[1:]
        raise


__all__ = ["reading", "write_atomic"]
