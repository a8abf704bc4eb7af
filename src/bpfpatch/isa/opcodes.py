"""The eBPF opcode space as enums and tables: the one place encodings live.

An 8-bit opcode is split three ways depending on its class::

    ALU / ALU64 / JMP / JMP32          LD / LDX / ST / STX
    +--------+----+-------+            +-------+------+-------+
    | op (4) | s  | cls(3)|            |mode(3)|sz (2)| cls(3)|
    +--------+----+-------+            +-------+------+-------+
     7      4  3   2     0              7     5 4    3 2     0

``s`` is the source bit: 0 = immediate (K), 1 = register (X).  Everything
else in bpfpatch derives from the enums below (RFC 9669 plus the Linux
extensions clang and the kernel emit).
"""

from __future__ import annotations

from enum import IntEnum


class InsnClass(IntEnum):
    """Bits 0-2 of the opcode."""

    LD = 0x00
    LDX = 0x01
    ST = 0x02
    STX = 0x03
    ALU = 0x04  # 32-bit arithmetic
    JMP = 0x05
    JMP32 = 0x06  # 32-bit comparisons
    ALU64 = 0x07


CLASS_MASK = 0x07
SOURCE_MASK = 0x08
OP_MASK = 0xF0
MODE_MASK = 0xE0
SIZE_MASK = 0x18


class Source(IntEnum):
    """Bit 3 of ALU/JMP opcodes: operand is the immediate or src register."""

    K = 0x00
    X = 0x08


class AluOp(IntEnum):
    """Bits 4-7 of ALU / ALU64 opcodes."""

    ADD = 0x00
    SUB = 0x10
    MUL = 0x20
    DIV = 0x30  # off=1: signed division (cpu v4)
    OR = 0x40
    AND = 0x50
    LSH = 0x60
    RSH = 0x70
    NEG = 0x80
    MOD = 0x90  # off=1: signed modulo (cpu v4)
    XOR = 0xA0
    MOV = 0xB0  # off=8/16/32 with X: sign-extending move (cpu v4)
    ARSH = 0xC0
    END = 0xD0  # byte swap; source bit selects to-le / to-be, ALU64 = bswap


class JmpOp(IntEnum):
    """Bits 4-7 of JMP / JMP32 opcodes."""

    JA = 0x00
    JEQ = 0x10
    JGT = 0x20
    JGE = 0x30
    JSET = 0x40
    JNE = 0x50
    JSGT = 0x60
    JSGE = 0x70
    CALL = 0x80
    EXIT = 0x90
    JLT = 0xA0
    JLE = 0xB0
    JSLT = 0xC0
    JSLE = 0xD0
    JCOND = 0xE0  # may_goto (src_reg = 0)


class Mode(IntEnum):
    """Bits 5-7 of load/store opcodes."""

    IMM = 0x00  # only ld_imm64
    ABS = 0x20  # legacy packet access
    IND = 0x40  # legacy packet access
    MEM = 0x60
    MEMSX = 0x80  # sign-extending load (cpu v4)
    ATOMIC = 0xC0


class Size(IntEnum):
    """Bits 3-4 of load/store opcodes."""

    W = 0x00
    H = 0x08
    B = 0x10
    DW = 0x18


SIZE_BYTES = {Size.B: 1, Size.H: 2, Size.W: 4, Size.DW: 8}


class AtomicOp(IntEnum):
    """The imm field of STX|ATOMIC instructions."""

    ADD = 0x00
    OR = 0x40
    AND = 0x50
    XOR = 0xA0
    FETCH_ADD = 0x01
    FETCH_OR = 0x41
    FETCH_AND = 0x51
    FETCH_XOR = 0xA1
    XCHG = 0xE1
    CMPXCHG = 0xF1
    LOAD_ACQ = 0x100
    STORE_REL = 0x110


ATOMIC_FETCH = 0x01

# Read-modify-write atomics exist for W and DW only; acquire/release for all sizes.
ATOMIC_RMW = frozenset(
    {
        AtomicOp.ADD, AtomicOp.OR, AtomicOp.AND, AtomicOp.XOR,
        AtomicOp.FETCH_ADD, AtomicOp.FETCH_OR, AtomicOp.FETCH_AND, AtomicOp.FETCH_XOR,
        AtomicOp.XCHG, AtomicOp.CMPXCHG,
    }
)


class PseudoSrc(IntEnum):
    """src_reg of ld_imm64: what the 64-bit immediate refers to."""

    NONE = 0
    MAP_FD = 1
    MAP_VALUE = 2
    BTF_ID = 3
    FUNC = 4  # imm = relative instruction offset of a subprogram
    MAP_IDX = 5
    MAP_IDX_VALUE = 6


class CallSrc(IntEnum):
    """src_reg of BPF_CALL: what the imm refers to."""

    HELPER = 0
    PSEUDO_CALL = 1  # imm = relative offset of a subprogram
    KFUNC = 2  # imm = BTF id, off = BTF fd index


class JcondSrc(IntEnum):
    """src_reg of JMP|JCOND."""

    MAY_GOTO = 0


class Reg(IntEnum):
    """Registers. R11 (AX) is the kernel's auxiliary register: only the kernel uses it."""

    R0 = 0
    R1 = 1
    R2 = 2
    R3 = 3
    R4 = 4
    R5 = 5
    R6 = 6
    R7 = 7
    R8 = 8
    R9 = 9
    R10 = 10
    AX = 11


MAX_USER_REG = 10
AX_REG = 11

# Fixed opcodes with names used all over the project.
LD_IMM64 = InsnClass.LD | Mode.IMM | Size.DW  # 0x18, two slots
CALL = InsnClass.JMP | JmpOp.CALL  # 0x85
EXIT = InsnClass.JMP | JmpOp.EXIT  # 0x95
JA = InsnClass.JMP | JmpOp.JA  # 0x05, 16-bit offset
GOTOL = InsnClass.JMP32 | JmpOp.JA  # 0x06, 32-bit offset in imm
MAY_GOTO = InsnClass.JMP | JmpOp.JCOND  # 0xe5

# Conditional jump ops and their inversion (used by jump relaxation and dce).
CONDITIONAL_JMP_OPS = frozenset(
    {
        JmpOp.JEQ, JmpOp.JGT, JmpOp.JGE, JmpOp.JSET, JmpOp.JNE, JmpOp.JSGT,
        JmpOp.JSGE, JmpOp.JLT, JmpOp.JLE, JmpOp.JSLT, JmpOp.JSLE,
    }
)

INVERTED_JMP = {
    JmpOp.JEQ: JmpOp.JNE,
    JmpOp.JNE: JmpOp.JEQ,
    JmpOp.JGT: JmpOp.JLE,
    JmpOp.JLE: JmpOp.JGT,
    JmpOp.JGE: JmpOp.JLT,
    JmpOp.JLT: JmpOp.JGE,
    JmpOp.JSGT: JmpOp.JSLE,
    JmpOp.JSLE: JmpOp.JSGT,
    JmpOp.JSGE: JmpOp.JSLT,
    JmpOp.JSLT: JmpOp.JSGE,
    # JSET has no inverse opcode; relaxation handles it with an extra jump.
}

