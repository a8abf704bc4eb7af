"""`Kind`: what an opcode is, as one 256-entry table (``KIND``, and ``KIND_OF`` for Python code).

Validation, text, the reference table (`bpfpatch.isa.refs`) and the passes
all start from an instruction's kind; an opcode the kernel does not know is
`Kind.INVALID`.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from bpfpatch.isa.opcodes import LD_IMM64, AluOp, InsnClass, JmpOp, Mode, Size, Source


class Kind(IntEnum):
    """What an opcode is, for validation, text and relocation."""

    INVALID = 0
    ALU_K = 1
    ALU_X = 2
    NEG = 3
    END = 4
    JA = 5
    GOTOL = 6
    JCOND_K = 7
    JCOND_X = 8
    CALL = 9
    EXIT = 10
    MAY_GOTO = 11
    LD_IMM64 = 12
    LD_ABS = 13
    LD_IND = 14
    LDX = 15
    LDSX = 16
    ST = 17
    STX = 18
    ATOMIC = 19
    CALLX = 20  # call the address in a register (clang -O0; dst holds it, imm with LLVM < 19)
    GOTOX = 21  # jump to the instruction address in dst (Linux 6.19, jump tables in BPF_MAP_TYPE_INSN_ARRAY)


def _alu_kind(cls: InsnClass, op: AluOp, source: Source) -> Kind:
    if op == AluOp.NEG:
        return Kind.NEG if source == Source.K else Kind.INVALID
    if op == AluOp.END:
        # ALU: to-le (K) / to-be (X); ALU64: only bswap (K).
        return Kind.END if (cls == InsnClass.ALU or source == Source.K) else Kind.INVALID
    return Kind.ALU_K if source == Source.K else Kind.ALU_X


def _jmp_kind(cls: InsnClass, op: JmpOp, source: Source) -> Kind:
    jmp64_k = cls == InsnClass.JMP and source == Source.K
    if op == JmpOp.JA:
        if source == Source.X:
            return Kind.GOTOX if cls == InsnClass.JMP else Kind.INVALID
        return Kind.JA if cls == InsnClass.JMP else Kind.GOTOL
    if op == JmpOp.CALL:
        if cls == InsnClass.JMP and source == Source.X:
            return Kind.CALLX
        return Kind.CALL if jmp64_k else Kind.INVALID
    if op == JmpOp.EXIT:
        return Kind.EXIT if jmp64_k else Kind.INVALID
    if op == JmpOp.JCOND:
        return Kind.MAY_GOTO if jmp64_k else Kind.INVALID
    return Kind.JCOND_K if source == Source.K else Kind.JCOND_X


def _build_kind_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint8)
    for source in Source:
        for cls in (InsnClass.ALU, InsnClass.ALU64):
            for op in AluOp:
                table[cls | op | source] = _alu_kind(cls, op, source)
        for cls in (InsnClass.JMP, InsnClass.JMP32):
            for op in JmpOp:
                table[cls | op | source] = _jmp_kind(cls, op, source)
    table[LD_IMM64] = Kind.LD_IMM64
    for size in (Size.W, Size.H, Size.B):
        table[InsnClass.LD | Mode.ABS | size] = Kind.LD_ABS
        table[InsnClass.LD | Mode.IND | size] = Kind.LD_IND
        table[InsnClass.LDX | Mode.MEMSX | size] = Kind.LDSX
    for size in Size:
        table[InsnClass.LDX | Mode.MEM | size] = Kind.LDX
        table[InsnClass.ST | Mode.MEM | size] = Kind.ST
        table[InsnClass.STX | Mode.MEM | size] = Kind.STX
        table[InsnClass.STX | Mode.ATOMIC | size] = Kind.ATOMIC
    return table


#: The kind of every opcode, as a uint8 array (index it with an array of opcodes).
KIND = _build_kind_table()
#: The same table as a Python list of `Kind`s, for code that looks at one instruction at a time
#: (indexing a NumPy array with a Python int, and comparing its scalars, is ~20x slower).
KIND_OF: list[Kind] = [Kind(k) for k in KIND.tolist()]

__all__ = ["KIND", "KIND_OF", "Kind"]
