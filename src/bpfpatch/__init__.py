"""bpfpatch: rewrite eBPF bytecode in linear time.

    >>> from bpfpatch import Program, PatchList, Insn
    >>> pl = PatchList(Program.from_bytes(raw))
    >>> for node in pl:
    ...     if node.insn.code == 0x3f:          # r_dst /= r_src
    ...         pl.prepend(node, [...])
    >>> new = pl.linearize()
"""

from typing import TYPE_CHECKING

from bpfpatch.errors import (
    AsmError,
    BpfPatchError,
    DecodeError,
    ElfError,
    KernelError,
    PatchError,
    ProgramError,
    RelocationError,
)

# The rest is imported when first asked for (PEP 562): `import bpfpatch.cli` (every command
# line, `bpfpatch --help` among them) then does not pay for NumPy before it needs it.
_LAZY = {
    "Insn": "bpfpatch.isa",
    "DELETED": "bpfpatch.patch", "INSERTED": "bpfpatch.patch", "Node": "bpfpatch.patch",
    "PatchInsn": "bpfpatch.patch", "PatchList": "bpfpatch.patch", "linearize": "bpfpatch.patch",
    "FuncInfo": "bpfpatch.program", "LineInfo": "bpfpatch.program", "Program": "bpfpatch.program",
}

if TYPE_CHECKING:
    from bpfpatch.isa import Insn
    from bpfpatch.patch import DELETED, INSERTED, Node, PatchInsn, PatchList, linearize
    from bpfpatch.program import FuncInfo, LineInfo, Program


def __getattr__(name: str) -> object:
    """The lazily imported public names (`_LAZY`)."""
    import importlib

    module = _LAZY.get(name)
    if module is None:
        if name not in ("isa", "patch", "program"):  # what `import bpfpatch` imported before, as attributes
            raise AttributeError(f"module 'bpfpatch' has no attribute {name!r}")
        return importlib.import_module(f"bpfpatch.{name}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0"

__all__ = [
    "AsmError", "BpfPatchError", "DELETED", "DecodeError", "ElfError", "FuncInfo", "INSERTED",
    "Insn", "KernelError", "LineInfo", "Node", "PatchError", "PatchInsn", "PatchList",
    "Program", "ProgramError", "RelocationError", "linearize",
]
