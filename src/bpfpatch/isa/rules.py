"""The validity rules of the opcode space, table-driven and vectorized (`validate_slots`).

One 256-entry table gives each opcode its `Kind` (`bpfpatch.isa.kinds`);
the tables here say, per kind and opcode, which fields must be zero (the
kernel's "reserved fields" checks), which offsets the ALU ops may carry
(signed div/mod, movsx, addr_space_cast) and which atomic operations exist
per size.  The assembler derives its operand shapes from the same tables.
"""

from __future__ import annotations

import numpy as np

from bpfpatch.errors import DecodeError
from bpfpatch.isa.kinds import KIND, Kind
from bpfpatch.isa.opcodes import (
    LD_IMM64,
    MAX_USER_REG,
    SIZE_MASK,
    AluOp,
    AtomicOp,
    CallSrc,
    InsnClass,
    PseudoSrc,
    Size,
    Source,
)
from bpfpatch.isa.slots import SLOT_DTYPE, SLOT_SIZE, dst_of, opcodes, src_of

#: Fields that must be zero, per kind (the kernel's "reserved fields" checks).
MUST_BE_ZERO: dict[Kind, tuple[str, ...]] = {
    Kind.ALU_K: ("src",),
    Kind.ALU_X: ("imm",),
    Kind.NEG: ("src", "off", "imm"),
    Kind.END: ("src", "off"),
    Kind.JA: ("dst", "src", "imm"),
    Kind.GOTOL: ("dst", "src", "off"),
    Kind.JCOND_K: ("src",),
    Kind.JCOND_X: ("imm",),
    Kind.CALL: ("dst",),
    Kind.EXIT: ("dst", "src", "off", "imm"),
    Kind.MAY_GOTO: ("dst", "src", "imm"),
    Kind.LD_IMM64: ("off",),
    Kind.LD_ABS: ("dst", "src", "off"),
    Kind.LD_IND: ("dst", "off"),
    Kind.LDX: ("imm",),
    Kind.LDSX: ("imm",),
    Kind.ST: ("src",),
    Kind.STX: ("imm",),
    Kind.ATOMIC: (),
    Kind.CALLX: ("src", "off"),
    Kind.GOTOX: ("src", "off", "imm"),
}


def _zero_table(field: str) -> np.ndarray:
    kinds = np.array([field in MUST_BE_ZERO.get(Kind(k), ()) for k in range(len(Kind))])
    return kinds[KIND]


#: Per field, which opcodes must have it zero (a bool array indexed by opcode).
ZERO_FIELD = {f: _zero_table(f) for f in ("dst", "src", "off", "imm")}

# The same rules as one 64-bit mask per opcode over the little-endian slot word,
# so the common case is checked with one gather and one AND.
_FIELD_BITS = {"dst": 0xF << 8, "src": 0xF << 12, "off": 0xFFFF << 16, "imm": 0xFFFFFFFF << 32}
_ZERO_MASK = np.zeros(256, dtype=np.uint64)
for _f, _bits in _FIELD_BITS.items():
    _ZERO_MASK[ZERO_FIELD[_f]] |= np.uint64(_bits)

# Which opcodes may use a non-zero off, beyond kinds where off is free.
_DIVMOD = np.zeros(256, dtype=bool)
for _cls in (InsnClass.ALU, InsnClass.ALU64):
    for _op in (AluOp.DIV, AluOp.MOD):
        for _s in Source:
            _DIVMOD[_cls | _op | _s] = True
#: The offsets a MOV X may carry: 8/16/32 make it a sign-extending move (cpu v4).
MOVSX_OFFS = {
    InsnClass.ALU | AluOp.MOV | Source.X: (0, 8, 16),
    InsnClass.ALU64 | AluOp.MOV | Source.X: (0, 8, 16, 32),
}
#: ALU64 MOV X: with off=1 it is addr_space_cast(src, imm >> 16, imm & 0xffff).
ADDR_SPACE_CAST_CODE = InsnClass.ALU64 | AluOp.MOV | Source.X
_ALU_OFF_RESERVED = np.zeros(256, dtype=bool)  # ALU ops: off must be 0 but for signed div/mod, movsx, addr_space_cast
for _code in range(256):
    if KIND[_code] in (Kind.ALU_K, Kind.ALU_X):
        _ALU_OFF_RESERVED[_code] = True

#: The atomic operations (imm of STX|ATOMIC) that exist for each size.
ATOMIC_IMMS = {
    Size.W: frozenset(int(a) for a in AtomicOp),
    Size.DW: frozenset(int(a) for a in AtomicOp),
    Size.B: frozenset({AtomicOp.LOAD_ACQ, AtomicOp.STORE_REL}),
    Size.H: frozenset({AtomicOp.LOAD_ACQ, AtomicOp.STORE_REL}),
}


# The fast screen of `validate_slots`: per opcode, every bit of the slot word that
# must be zero in the common case (reserved fields, and off of ALU ops), and the
# opcodes whose values need a closer look (byte swaps, calls, ld_imm64, atomics).
_STRICT_MASK = _ZERO_MASK | np.where(_ALU_OFF_RESERVED, np.uint64(_FIELD_BITS["off"]), np.uint64(0))
_SCREEN_CHUNK = 1 << 16
_NEEDS_LOOK = np.isin(KIND, (Kind.INVALID, Kind.END, Kind.CALL, Kind.LD_IMM64, Kind.ATOMIC))
# The screen's one gather: an opcode that always needs a look tests every bit of its word, which is
# never zero (its opcode byte is not) -- except opcode 0, tested apart.
_SCREEN_MASK = np.where(_NEEDS_LOOK, ~np.uint64(0), _STRICT_MASK)
assert _NEEDS_LOOK[0]


def needs_close_look(words: np.ndarray, code: np.ndarray, max_reg: int = MAX_USER_REG) -> np.ndarray:
    """`validate_slots`' screen: which slot words (with their opcodes) the detailed rules must see.

    A superset of the invalid ones: a field set where the opcode usually wants it zero, an opcode
    that always needs a look (unknown, byte swap, call, ld_imm64, atomic), a register above `max_reg`.
    """
    part = ((words & np.take(_SCREEN_MASK, code)) != 0) | (code == 0)
    if max_reg < 15:
        regs = (words >> np.uint64(8)).astype(np.uint8)
        part |= ((regs & 0x0F) > max_reg) | ((regs >> 4) > max_reg)
    return part


def validate_slots(slots: np.ndarray, *, max_reg: int = MAX_USER_REG, offset_base: int = 0) -> None:
    """Raise `DecodeError` for the first invalid instruction, naming its index.

    Checks, as the kernel does: known opcode, reserved fields zero, registers
    in range, ld_imm64 complete with a zero second-slot header, pseudo source
    values known.  Jump targets are checked by `check_jump_targets`.

    A vectorized screen over the 8-byte words finds the few instructions that
    need a closer look (a field set where it usually must be zero, a byte
    swap, call, ld_imm64 or atomic); only those get the detailed rules.
    """
    n = len(slots)
    if n == 0:
        return
    slots = np.ascontiguousarray(slots)
    words = slots.view(np.uint64)
    code = opcodes(slots)
    first = np.flatnonzero(code == LD_IMM64)
    # An ld_imm64 cannot be the last slot, and its second slot must be a bare header.
    if len(first) and first[-1] == n - 1:
        _fail(slots, n - 1, "truncated ld_imm64 (second slot missing)", offset_base)
    second = first + 1
    bad2 = (words[second] & np.uint64(0xFFFFFFFF)) != 0
    if bad2.any():
        _fail(slots, int(first[np.argmax(bad2)]), "ld_imm64 second slot has reserved fields set", offset_base)
    look = np.empty(n, dtype=bool)
    for lo in range(0, n, _SCREEN_CHUNK):  # chunks: temporaries stay in cache
        look[lo : lo + _SCREEN_CHUNK] = needs_close_look(words[lo : lo + _SCREEN_CHUNK], code[lo : lo + _SCREEN_CHUNK], max_reg)
    look[second] = False  # second halves are data (checked above)
    cand = np.flatnonzero(look)
    if len(cand):
        _validate_closely(slots[cand], cand, max_reg, offset_base, slots)


def _validate_closely(sub: np.ndarray, at: np.ndarray, max_reg: int, offset_base: int, slots: np.ndarray) -> None:
    """The detailed rules on the instructions `sub` (found at slots `at`)."""
    errors: list[tuple[int, str]] = []

    def flag(mask: np.ndarray, why: str) -> None:
        if mask.any():
            errors.append((int(at[np.argmax(mask)]), why))

    code = sub["code"]
    kind = KIND[code]
    flag(kind == Kind.INVALID, "unknown opcode")
    # addr_space_cast (cpu v4 arenas): ALU64 MOV X with off=1 and the address spaces in imm.
    off = sub["off"]
    asc = (code == ADDR_SPACE_CAST_CODE) & (off == 1)
    words = sub.view(np.uint64)
    reserved = ((words & _ZERO_MASK[code]) != 0) & ~asc
    if reserved.any():
        fields = {"dst": dst_of(sub), "src": src_of(sub), "off": off, "imm": sub["imm"]}
        for field, table in ZERO_FIELD.items():
            flag(table[code] & (fields[field] != 0) & ~asc, f"reserved field {field} is set")
    regs = sub["regs"]
    if max_reg < 15:
        flag(regs & 0x0F > max_reg, "invalid destination register")
        flag(regs >> 4 > max_reg, "invalid source register")
    src = src_of(sub)
    # off is reserved on ALU ops except: signed div/mod (off=1) and movsx (8/16/32).
    alu_off = _ALU_OFF_RESERVED[code] & (off != 0)
    if alu_off.any():
        ok = (_DIVMOD[code] & (off == 1)) | asc
        for mcode, allowed in MOVSX_OFFS.items():
            ok |= (code == mcode) & np.isin(off, allowed)
        flag(alu_off & ~ok, "reserved field off is set")
    end = kind == Kind.END
    if end.any():
        flag(end & ~np.isin(sub["imm"], (16, 32, 64)), "byte swap width must be 16, 32 or 64")
    call = kind == Kind.CALL
    if call.any():
        flag(call & (src > CallSrc.KFUNC) & (src <= max_reg), "unknown call source")
        flag(call & (src != CallSrc.KFUNC) & (off != 0), "reserved field off is set")
    callx = kind == Kind.CALLX
    if callx.any():
        flag(callx & ((sub["imm"] < 0) | (sub["imm"] > 10) | ((sub["imm"] != 0) & (dst_of(sub) != 0))),
             "callx names its register in dst (or, LLVM < 19, in imm), r0-r10")
    ld = kind == Kind.LD_IMM64
    if ld.any():
        flag(ld & (src > max(PseudoSrc)) & (src <= max_reg), "unknown ld_imm64 pseudo source")
    atomic = kind == Kind.ATOMIC
    if atomic.any():
        size = code & SIZE_MASK
        bad = np.zeros(len(sub), dtype=bool)
        for sz, allowed in ATOMIC_IMMS.items():
            bad |= atomic & (size == sz) & ~np.isin(sub["imm"], list(allowed))
        flag(bad, "invalid atomic operation")
    if errors:
        index, why = min(errors)
        _fail(slots, index, why, offset_base)


def _fail(slots: np.ndarray, slot: int, why: str, offset_base: int) -> None:
    s = slots[slot]
    regs = int(s["regs"])
    raise DecodeError(
        f"{why} (code={int(s['code']):#04x} dst={regs & 15} src={regs >> 4} off={int(s['off'])} imm={int(s['imm'])})",
        index=slot,
        byte_offset=offset_base + slot * SLOT_SIZE,
    )


# The same screen for one instruction at a time, as Python lists (a NumPy scalar lookup costs more).
_STRICT_OF = [int(m) for m in _STRICT_MASK]
_LOOK_OF = _NEEDS_LOOK.tolist()
_FIELDS = ("code", "dst", "src", "off", "imm")
#: The kernel's zero-extension marker (BPF_ZEXT_REG): ``w_dst = w_dst`` with imm 1, kernel-internal.
ZEXT_MARKER_CODE = InsnClass.ALU | AluOp.MOV | Source.X


#: BPF_MOV64_PERCPU_REG: ALU64 MOV X with off BPF_ADDR_PERCPU (kernel-internal, do_misc_fixups).
PERCPU_MOV_CODE, BPF_ADDR_PERCPU = 0xBF, -1
#: BPF_PROBE_MEM / BPF_PROBE_MEMSX (kernel-internal LDX modes) -> the mode they stand for.
PROBE_MODES = {0x20: 0x60, 0x40: 0x80}


def insn_problem(insn: tuple, *, max_reg: int = MAX_USER_REG, kernel_internal: bool = False) -> str | None:
    """Why `insn` (code, dst, src, off, imm) is not an instruction the kernel accepts; None if it is.

    Fields are ints (an ``IntEnum`` or a bool is one) in their ranges:
    registers 0..`max_reg`, off signed 16 bits, imm signed 32 bits (an
    ld_imm64's 64 bits, signed or unsigned); then every rule of
    `validate_slots`.  `kernel_internal` also admits the kernel's
    zero-extension marker (BPF_ZEXT_REG: ``w_dst = w_dst`` with imm 1),
    its per-CPU address move (BPF_MOV64_PERCPU_REG: ``r_dst = r_src`` with off -1)
    and its exception-table loads (BPF_PROBE_MEM / BPF_PROBE_MEMSX: checked as the
    LDX MEM / MEMSX they stand for).
    """
    if len(insn) != 5:
        return f"an instruction has 5 fields, not {len(insn)}"
    for name, v in zip(_FIELDS, insn):
        if type(v) is not int and not isinstance(v, int):
            return f"field {name} is a {type(v).__name__}, not an int"
    code, dst, src, off, imm = insn
    if not 0 <= code < 256:
        return f"opcode {code} is outside 0..255"
    if kernel_internal and code & 0x07 == 0x01 and code & 0xE0 in PROBE_MODES:
        code = code & 0x1F | PROBE_MODES[code & 0xE0]
    if KIND[code] == Kind.INVALID:
        return f"invalid opcode {code:#x}" + (" (a raw ld_imm64 half cannot be patched in)" if code == 0 else "")
    if not 0 <= dst <= max_reg:
        return f"dst register {dst} is outside 0..{max_reg}"
    if not 0 <= src <= max_reg and not (code == LD_IMM64 or KIND[code] == Kind.CALL) or not 0 <= src <= 15:
        return f"src register {src} is outside 0..{max_reg}"
    if not -(1 << 15) <= off < 1 << 15:
        return f"off {off} does not fit in 16 bits (signed)"
    if code == LD_IMM64:
        if not -(1 << 63) <= imm < 1 << 64:
            return f"imm {imm} does not fit in 64 bits"
    elif not -(1 << 31) <= imm < 1 << 31:
        return f"imm {imm} does not fit in 32 bits (signed)"
    w0 = code | (dst | src << 4) << 8 | (off & 0xFFFF) << 16 | (imm & 0xFFFFFFFF) << 32
    if not _LOOK_OF[code] and not w0 & _STRICT_OF[code]:
        return None
    if kernel_internal and code == ZEXT_MARKER_CODE and dst == src and off == 0 and imm == 1:
        return None
    if kernel_internal and code == PERCPU_MOV_CODE and off == BPF_ADDR_PERCPU and imm == 0:
        return None
    slots = np.array([w0, ((imm >> 32) & 0xFFFFFFFF) << 32 if code == LD_IMM64 else 0], dtype=np.uint64)
    try:
        validate_slots(slots[: 2 if code == LD_IMM64 else 1].view(SLOT_DTYPE), max_reg=max_reg)
    except DecodeError as e:
        return e.message
    return None


__all__ = [
    "ADDR_SPACE_CAST_CODE", "ATOMIC_IMMS", "MOVSX_OFFS", "MUST_BE_ZERO", "ZEXT_MARKER_CODE", "ZERO_FIELD", "insn_problem",
    "needs_close_look", "validate_slots",
]
