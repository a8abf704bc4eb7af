"""One exception tree for bpfpatch.

Every error names where it happened: an instruction index, a byte offset, an ELF
section. The CLI maps each family to one line and an exit code.

    BpfPatchError
    ├── DecodeError          bytes -> instructions (index, byte offset)
    ├── AsmError             text -> instructions (line number)
    ├── ProgramError         structural problems (jump outside program, ...)
    ├── PatchError           misuse of the patch-list API, caught at the call
    ├── RelocationError      an offset that no longer fits after linearize
    ├── ElfError             ELF / BTF reading and writing (section, offset)
    ├── FileError            a file that cannot be read or written (path, reason)
    └── KernelError          bpf() failures (errno, verifier log tail)
"""

from __future__ import annotations


class BpfPatchError(Exception):
    """Base class of every error bpfpatch raises on purpose."""


def _where(*parts: str | None) -> str:
    """"instruction 3, byte offset 24: " -- the position prefix of a message."""
    given = [p for p in parts if p]
    return f"{', '.join(given)}: " if given else ""


class DecodeError(BpfPatchError):
    """Raw bytes that are not a valid instruction stream."""

    def __init__(self, message: str, *, index: int | None = None, byte_offset: int | None = None):
        self.index = index
        self.byte_offset = byte_offset
        super().__init__(
            _where(
                f"instruction {index}" if index is not None else None,
                f"byte offset {byte_offset}" if byte_offset is not None else None,
            )
            + message
        )
        self.message = message


class AsmError(BpfPatchError):
    """Assembly text that cannot be assembled."""

    def __init__(self, message: str, *, line: int | None = None, text: str | None = None, column: int | None = None):
        self.line = line
        self.column = column
        self.text = text
        prefix = _where(f"line {line}" if line is not None else None, f"column {column}" if column is not None else None)
        shown = text.strip() if text else ""
        if len(shown) > 80:
            shown = shown[:77] + "..."
        suffix = f" in {shown!r}" if text else ""
        super().__init__(prefix + message + suffix)
        self.message = message


class ProgramError(BpfPatchError):
    """A program that is structurally invalid (e.g. a jump outside it)."""

    def __init__(self, message: str, *, index: int | None = None):
        self.index = index
        prefix = f"instruction {index}: " if index is not None else ""
        super().__init__(prefix + message)
        self.message = message


class PatchError(BpfPatchError):
    """Misuse of the patch-list API, raised at the offending call."""


class RelocationError(BpfPatchError):
    """A relocated jump or call whose offset no longer fits its field."""

    def __init__(self, message: str, *, index: int, needed: int):
        self.index = index
        self.needed = needed
        super().__init__(f"instruction {index}: {message} (needs offset {needed})")


class ElfError(BpfPatchError):
    """An ELF object or its BTF that cannot be read or written."""

    def __init__(self, message: str, *, section: str | None = None, offset: int | None = None):
        self.section = section
        self.offset = offset
        super().__init__(
            _where(f"section {section}" if section is not None else None, f"offset {offset:#x}" if offset is not None else None)
            + message
        )
        self.message = message


class FileError(BpfPatchError, OSError):
    """A file that cannot be read or written: names the path and the reason (no traceback, no partial file)."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        BpfPatchError.__init__(self, f"{path}: {reason}")

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class KernelError(BpfPatchError):
    """A bpf() system call that failed."""

    def __init__(self, message: str, *, errno: int | None = None, log: str = ""):
        self.errno = errno
        self.log = log
        super().__init__(message)

    def log_tail(self, lines: int = 5) -> str:
        """The last non-empty lines of the verifier log."""
        rows = [r for r in self.log.splitlines() if r.strip()]
        return "\n".join(rows[-lines:])


class NotPrivilegedError(KernelError):
    """bpf() refused for lack of privilege (EPERM / EACCES)."""


class VerifierError(KernelError):
    """BPF_PROG_LOAD rejected by the verifier (log attached)."""
