"""Bytes <-> instruction slots, and the validity rules of the opcode space.

A program is stored as the kernel stores it: an array of 8-byte slots
(``SLOT_DTYPE``: code, regs, off, imm, little endian), so decoding little
endian bytes is a copy and NumPy moves whole instructions as 8-byte words.
``regs`` packs dst (low nibble) and src (high nibble); read them with
`dst_of` / `src_of`.  Big-endian files are converted in `decode_slots` /
`encode_slots`.

Validation is table-driven and vectorized: one 256-entry table gives each
opcode its `Kind`, and per-kind tables say which fields must be zero.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Iterable, Literal, Sequence

import numpy as np

from bpfpatch.errors import DecodeError
from bpfpatch.isa.insn import Insn
from bpfpatch.isa.opcodes import (
    CLASS_MASK,
    LD_IMM64,
    MAX_USER_REG,
    OP_MASK,
    SIZE_MASK,
    SOURCE_MASK,
    AluOp,
    AtomicOp,
    CallSrc,
    InsnClass,
    JmpOp,
    Mode,
    PseudoSrc,
    Size,
    Source,
)

ByteOrder = Literal["little", "big"]

SLOT_SIZE = 8

# One slot exactly as the kernel's struct bpf_insn lays it out (little endian).
SLOT_DTYPE = np.dtype([("code", "u1"), ("regs", "u1"), ("off", "<i2"), ("imm", "<i4")])
assert SLOT_DTYPE.itemsize == 8

_RAW_BE = np.dtype([("code", "u1"), ("regs", "u1"), ("off", ">i2"), ("imm", ">i4")])


def dst_of(slots: np.ndarray) -> np.ndarray:
    """The dst_reg field of every slot."""
    return slots["regs"] & 0x0F


def src_of(slots: np.ndarray) -> np.ndarray:
    """The src_reg field of every slot."""
    return slots["regs"] >> 4


def pack_regs(dst: np.ndarray | int, src: np.ndarray | int) -> np.ndarray | int:
    """dst and src registers packed into the regs byte."""
    return (np.asarray(dst) & 0x0F) | (np.asarray(src) << 4) if not (isinstance(dst, int) and isinstance(src, int)) else (dst & 0x0F) | (src << 4)


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


def _build_kind_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint8)
    for cls in (InsnClass.ALU, InsnClass.ALU64):
        for op in AluOp:
            for source in Source:
                code = cls | op | source
                if op == AluOp.NEG:
                    kind = Kind.NEG if source == Source.K else Kind.INVALID
                elif op == AluOp.END:
                    # ALU: to-le (K) / to-be (X); ALU64: only bswap (K).
                    kind = Kind.END if (cls == InsnClass.ALU or source == Source.K) else Kind.INVALID
                else:
                    kind = Kind.ALU_K if source == Source.K else Kind.ALU_X
                table[code] = kind
    for cls in (InsnClass.JMP, InsnClass.JMP32):
        for op in JmpOp:
            for source in Source:
                code = cls | op | source
                if op == JmpOp.JA:
                    kind = Kind.INVALID if source == Source.X else (Kind.JA if cls == InsnClass.JMP else Kind.GOTOL)
                elif op == JmpOp.CALL:
                    kind = Kind.CALL if (cls == InsnClass.JMP and source == Source.K) else Kind.INVALID
                elif op == JmpOp.EXIT:
                    kind = Kind.EXIT if (cls == InsnClass.JMP and source == Source.K) else Kind.INVALID
                elif op == JmpOp.JCOND:
                    kind = Kind.MAY_GOTO if (cls == InsnClass.JMP and source == Source.K) else Kind.INVALID
                else:
                    kind = Kind.JCOND_K if source == Source.K else Kind.JCOND_X
                table[code] = kind
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


KIND = _build_kind_table()
#: The same table as a Python list of `Kind`s, for code that looks at one instruction at a time
#: (indexing a NumPy array with a Python int, and comparing its scalars, is ~20x slower).
KIND_OF: list[Kind] = [Kind(k) for k in KIND.tolist()]

# Fields that must be zero, per kind (the kernel's "reserved fields" checks).
_MUST_BE_ZERO: dict[Kind, tuple[str, ...]] = {
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
}


def _zero_table(field: str) -> np.ndarray:
    kinds = np.array([field in _MUST_BE_ZERO.get(Kind(k), ()) for k in range(len(Kind))])
    return kinds[KIND]


_ZERO = {f: _zero_table(f) for f in ("dst", "src", "off", "imm")}

# The same rules as one 64-bit mask per opcode over the little-endian slot word,
# so the common case is checked with one gather and one AND.
_FIELD_BITS = {"dst": 0xF << 8, "src": 0xF << 12, "off": 0xFFFF << 16, "imm": 0xFFFFFFFF << 32}
_ZERO_MASK = np.zeros(256, dtype=np.uint64)
for _f, _bits in _FIELD_BITS.items():
    _ZERO_MASK[_ZERO[_f]] |= np.uint64(_bits)

# Which opcodes may use a non-zero off, beyond kinds where off is free.
_DIVMOD = np.zeros(256, dtype=bool)
for _cls in (InsnClass.ALU, InsnClass.ALU64):
    for _op in (AluOp.DIV, AluOp.MOD):
        for _s in Source:
            _DIVMOD[_cls | _op | _s] = True
_MOVSX_OFFS = {
    InsnClass.ALU | AluOp.MOV | Source.X: (0, 8, 16),
    InsnClass.ALU64 | AluOp.MOV | Source.X: (0, 8, 16, 32),
}
#: ALU64 MOV X: with off=1 it is addr_space_cast(src, imm >> 16, imm & 0xffff).
ADDR_SPACE_CAST_CODE = InsnClass.ALU64 | AluOp.MOV | Source.X
_ALU_OFF_FREE = np.zeros(256, dtype=bool)  # ALU ops whose off must be 0 unless listed above
for _code in range(256):
    if KIND[_code] in (Kind.ALU_K, Kind.ALU_X):
        _ALU_OFF_FREE[_code] = True

_ATOMIC_IMMS = {
    Size.W: frozenset(int(a) for a in AtomicOp),
    Size.DW: frozenset(int(a) for a in AtomicOp),
    Size.B: frozenset({AtomicOp.LOAD_ACQ, AtomicOp.STORE_REL}),
    Size.H: frozenset({AtomicOp.LOAD_ACQ, AtomicOp.STORE_REL}),
}


def opcodes(slots: np.ndarray) -> np.ndarray:
    """The opcode of every slot as a contiguous uint8 array.

    The low byte of each little-endian 8-byte word: one narrowing cast,
    several times faster to scan and to look up in tables than the strided
    ``slots["code"]`` field.
    """
    return np.ascontiguousarray(slots).view(np.uint64).astype(np.uint8)


def distinct_bytes(values: np.ndarray) -> list[int]:
    """The distinct values of an array of bytes (opcodes, regs), ascending.

    A 256-bin histogram: one pass, much faster than ``np.unique`` on large arrays.
    """
    return np.flatnonzero(np.bincount(values, minlength=256)).tolist()


def is_ld_imm64_first(slots: np.ndarray) -> np.ndarray:
    """Mask of slots that start an ld_imm64 (their next slot is its high half)."""
    return opcodes(slots) == LD_IMM64


def insn_starts(slots: np.ndarray) -> np.ndarray:
    """Mask of slots that begin an instruction (False on ld_imm64 second halves)."""
    starts = np.ones(len(slots), dtype=bool)
    first = np.flatnonzero(is_ld_imm64_first(slots))
    first = first[first + 1 < len(slots)]
    starts[first + 1] = False
    return starts


# The fast screen of `validate_slots`: per opcode, every bit of the slot word that
# must be zero in the common case (reserved fields, and off of ALU ops), and the
# opcodes whose values need a closer look (byte swaps, calls, ld_imm64, atomics).
_STRICT_MASK = _ZERO_MASK | np.where(_ALU_OFF_FREE, np.uint64(_FIELD_BITS["off"]), np.uint64(0))
_SCREEN_CHUNK = 1 << 16
_NEEDS_LOOK = np.isin(KIND, (Kind.INVALID, Kind.END, Kind.CALL, Kind.LD_IMM64, Kind.ATOMIC))


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
        w, c = words[lo : lo + _SCREEN_CHUNK], code[lo : lo + _SCREEN_CHUNK]
        part = np.take(_NEEDS_LOOK, c) | ((w & np.take(_STRICT_MASK, c)) != 0)
        if max_reg < 15:
            regs = (w >> np.uint64(8)).astype(np.uint8)
            part |= ((regs & 0x0F) > max_reg) | ((regs >> 4) > max_reg)
        look[lo : lo + _SCREEN_CHUNK] = part
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
        for field, table in _ZERO.items():
            flag(table[code] & (fields[field] != 0) & ~asc, f"reserved field {field} is set")
    regs = sub["regs"]
    if max_reg < 15:
        flag(regs & 0x0F > max_reg, "invalid destination register")
        flag(regs >> 4 > max_reg, "invalid source register")
    src = src_of(sub)
    # off is reserved on ALU ops except: signed div/mod (off=1) and movsx (8/16/32).
    alu_off = _ALU_OFF_FREE[code] & (off != 0)
    if alu_off.any():
        ok = (_DIVMOD[code] & (off == 1)) | asc
        for mcode, allowed in _MOVSX_OFFS.items():
            ok |= (code == mcode) & np.isin(off, allowed)
        flag(alu_off & ~ok, "reserved field off is set")
    end = kind == Kind.END
    if end.any():
        flag(end & ~np.isin(sub["imm"], (16, 32, 64)), "byte swap width must be 16, 32 or 64")
    call = kind == Kind.CALL
    if call.any():
        flag(call & (src > CallSrc.KFUNC) & (src <= max_reg), "unknown call source")
        flag(call & (src != CallSrc.KFUNC) & (off != 0), "reserved field off is set")
    ld = kind == Kind.LD_IMM64
    if ld.any():
        flag(ld & (src > max(PseudoSrc)) & (src <= max_reg), "unknown ld_imm64 pseudo source")
    atomic = kind == Kind.ATOMIC
    if atomic.any():
        size = code & SIZE_MASK
        bad = np.zeros(len(sub), dtype=bool)
        for sz, allowed in _ATOMIC_IMMS.items():
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


def decode_slots(raw: bytes | bytearray | memoryview, *, byteorder: ByteOrder = "little") -> np.ndarray:
    """Raw instruction bytes -> array of `SLOT_DTYPE` (not validated)."""
    if len(raw) % SLOT_SIZE:
        raise DecodeError(
            f"length {len(raw)} is not a multiple of {SLOT_SIZE} bytes",
            index=len(raw) // SLOT_SIZE,
            byte_offset=len(raw) - len(raw) % SLOT_SIZE,
        )
    if byteorder == "little":
        # Copy as plain 8-byte words: several times faster than a structured copy.
        return np.frombuffer(raw, dtype=np.uint64).copy().view(SLOT_DTYPE)
    be = np.frombuffer(raw, dtype=_RAW_BE)
    slots = np.empty(len(be), dtype=SLOT_DTYPE)
    slots["code"] = be["code"]
    # Big endian keeps dst in the high nibble of the regs byte.
    slots["regs"] = (be["regs"] >> 4) | ((be["regs"] & 0x0F) << 4)
    slots["off"] = be["off"]
    slots["imm"] = be["imm"]
    return slots


def encode_slots(slots: np.ndarray, *, byteorder: ByteOrder = "little") -> bytes:
    """Array of `SLOT_DTYPE` -> raw instruction bytes."""
    if byteorder == "little":
        return np.ascontiguousarray(slots).tobytes()
    be = np.empty(len(slots), dtype=_RAW_BE)
    be["code"] = slots["code"]
    be["regs"] = (slots["regs"] >> 4) | ((slots["regs"] & 0x0F) << 4)
    be["off"] = slots["off"]
    be["imm"] = slots["imm"]
    return be.tobytes()


def insns_to_slots(insns: Iterable[Insn]) -> np.ndarray:
    """Logical instructions -> slot array (an ld_imm64 becomes two slots)."""
    rows: list[tuple[int, int, int, int]] = []
    append = rows.append
    for insn in insns:
        code, dst, src, off, imm = insn
        if code == LD_IMM64:
            append((code, (dst & 0x0F) | (src << 4), off, _s32(imm & 0xFFFFFFFF)))
            append((0, 0, 0, _s32((imm >> 32) & 0xFFFFFFFF)))
        else:
            append((code, (dst & 0x0F) | (src << 4), off, imm))
    return np.array(rows, dtype=SLOT_DTYPE) if rows else np.empty(0, dtype=SLOT_DTYPE)


def slots_to_insns(slots: np.ndarray) -> list[Insn]:
    """Slot array -> logical instructions (ld_imm64 pairs joined)."""
    out: list[Insn] = []
    codes = slots["code"].tolist()
    dsts = dst_of(slots).tolist()
    srcs = src_of(slots).tolist()
    offs = slots["off"].tolist()
    imms = slots["imm"].tolist()
    i, n = 0, len(codes)
    while i < n:
        code = codes[i]
        if code == LD_IMM64 and i + 1 < n:
            imm = (imms[i] & 0xFFFFFFFF) | ((imms[i + 1] & 0xFFFFFFFF) << 32)
            out.append(Insn(code, dsts[i], srcs[i], offs[i], _s64(imm)))
            i += 2
        else:
            out.append(Insn(code, dsts[i], srcs[i], offs[i], imms[i]))
            i += 1
    return out


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _s64(v: int) -> int:
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v & (1 << 63) else v


_REF_KINDS_OFF = (Kind.JA, Kind.JCOND_K, Kind.JCOND_X, Kind.MAY_GOTO)
# Opcodes that may reference another instruction (calls and ld_imm64 depend on src).
_MAYBE_REF = np.isin(KIND, _REF_KINDS_OFF + (Kind.GOTOL, Kind.CALL, Kind.LD_IMM64))


def branch_offsets(slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(slot indices, relative offsets) of every instruction that targets another.

    Covers jumps (16-bit off), gotol (32-bit imm), may_goto, pseudo calls
    (imm) and ld_imm64 with a pseudo-func source (imm of the first slot).
    """
    code = opcodes(slots)
    idx = np.flatnonzero(np.take(_MAYBE_REF, code))  # np.take: a fast table lookup on uint8
    if not len(idx):
        return idx, np.empty(0, dtype=np.int64)
    # A second ld_imm64 slot is never an instruction of its own.
    prev_is_ld = np.zeros(len(idx), dtype=bool)
    has_prev = idx > 0
    prev_is_ld[has_prev] = code[idx[has_prev] - 1] == LD_IMM64
    if prev_is_ld.any():
        starts = insn_starts(slots)
        idx = idx[starts[idx]]
    c = code[idx]
    kind = KIND[c]
    src = slots["regs"][idx] >> 4
    off_jump = np.isin(kind, _REF_KINDS_OFF)
    keep = (
        off_jump
        | (kind == Kind.GOTOL)
        | ((kind == Kind.CALL) & (src == CallSrc.PSEUDO_CALL))
        | ((kind == Kind.LD_IMM64) & (src == PseudoSrc.FUNC))
    )
    idx, off_jump = idx[keep], off_jump[keep]
    rel = np.where(off_jump, slots["off"][idx].astype(np.int64), slots["imm"][idx].astype(np.int64))
    return idx, rel


def check_jump_targets(slots: np.ndarray, external: Iterable[int] = ()) -> None:
    """Raise `DecodeError` if a jump or call lands outside the program or mid-ld_imm64.

    Slots listed in `external` (calls resolved by an ELF relocation to
    another section) are not checked.
    """
    idx, rel = branch_offsets(slots)
    ext = np.fromiter(external, dtype=np.int64)
    if len(ext):
        keep = ~np.isin(idx, ext)
        idx, rel = idx[keep], rel[keep]
    if not len(idx):
        return
    target = idx + rel + 1
    n = len(slots)
    outside = (target < 0) | (target >= n)
    if outside.any():
        i = int(idx[np.argmax(outside)])
        raise DecodeError(
            f"jump target {int(target[np.argmax(outside)])} is outside the program (0..{n - 1})",
            index=i,
            byte_offset=i * SLOT_SIZE,
        )
    starts = insn_starts(slots)
    middle = ~starts[target]
    if middle.any():
        i = int(idx[np.argmax(middle)])
        raise DecodeError("jump into the middle of an ld_imm64", index=i, byte_offset=i * SLOT_SIZE)


def slots_from_rows(rows: Sequence[Sequence[int]]) -> np.ndarray:
    """[[code, dst, src, off, imm], ...] (kernel dump form, one per slot) -> slot array."""
    return (
        np.array([(c, (d & 0x0F) | (s << 4), o, i) for c, d, s, o, i in rows], dtype=SLOT_DTYPE)
        if len(rows)
        else np.empty(0, dtype=SLOT_DTYPE)
    )


def slot_rows(slots: np.ndarray) -> list[tuple[int, int, int, int, int]]:
    """Slot array -> [(code, dst, src, off, imm), ...], one per slot (kernel dump form)."""
    return list(zip(slots["code"].tolist(), dst_of(slots).tolist(), src_of(slots).tolist(), slots["off"].tolist(), slots["imm"].tolist()))


__all__ = [
    "SLOT_DTYPE",
    "SLOT_SIZE",
    "Kind",
    "KIND",
    "KIND_OF",
    "ByteOrder",
    "decode_slots",
    "encode_slots",
    "validate_slots",
    "check_jump_targets",
    "insn_starts",
    "is_ld_imm64_first",
    "insns_to_slots",
    "slots_to_insns",
    "branch_offsets",
    "slots_from_rows",
    "slot_rows",
    "dst_of",
    "src_of",
    "pack_regs",
    "OP_MASK",
    "CLASS_MASK",
    "SOURCE_MASK",
]
