"""bpfpatch: rewrite eBPF bytecode in linear time.

    >>> from bpfpatch import Program, PatchList, Insn
    >>> pl = PatchList(Program.from_bytes(raw))
    >>> for node in pl:
    ...     if node.insn.code == 0x3f:          # r_dst /= r_src
    ...         pl.prepend(node, [...])
    >>> new = pl.linearize()
"""

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
from bpfpatch.isa import Insn
from bpfpatch.patch import DELETED, INSERTED, Node, PatchInsn, PatchList, linearize
from bpfpatch.program import FuncInfo, LineInfo, Program

__version__ = "0.1.0"

__all__ = [
    "AsmError", "BpfPatchError", "DELETED", "DecodeError", "ElfError", "FuncInfo", "INSERTED",
    "Insn", "KernelError", "LineInfo", "Node", "PatchError", "PatchInsn", "PatchList",
    "Program", "ProgramError", "RelocationError", "linearize",
]
