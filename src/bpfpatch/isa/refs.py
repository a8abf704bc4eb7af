"""The one table of instruction references: where a target lives, and what an instruction refers to.

Every instruction that names another instruction keeps the offset in one of
two fields (`Target`): ``off`` (the 16-bit field: ``ja``, conditional jumps,
``may_goto``) or ``imm`` (``gotol``; a pseudo call; a pseudo-func
``ld_imm64``, in its first slot).  Besides jumps, an instruction may refer
to something outside the program (`Ref`): a helper, a kfunc's BTF id, a map
by fd or index, a BTF type.  Both depend on the opcode and, for calls and
``ld_imm64``, on the source register field, so the table is indexed by
``code << 4 | src`` (`ref_index`).

The patch list, the bulk form, linearize, `Program` and the passes all ask
this table; nothing else spells the rule out.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Iterable

import numpy as np

from bpfpatch.errors import DecodeError
from bpfpatch.isa.kinds import KIND_OF, Kind
from bpfpatch.isa.opcodes import CLASS_MASK, LD_IMM64, CallSrc, PseudoSrc
from bpfpatch.isa.slots import SLOT_SIZE, insn_starts, opcodes


class Target(IntEnum):
    """The field that holds an instruction's target offset (relative, in slots, from the next slot)."""

    NONE = 0  #: the instruction targets no instruction
    OFF = 1  #: the 16-bit ``off`` field
    IMM = 2  #: the 32-bit ``imm`` field (of the first slot for ``ld_imm64``)


class Ref(IntEnum):
    """What an instruction refers to beyond its registers and plain immediates."""

    NONE = 0
    JUMP = 1  #: another instruction of its subprogram (ja, gotol, conditional jumps, may_goto)
    SUBPROG = 2  #: call src=1: the first instruction of a subprogram
    FUNC = 3  #: ld_imm64 src=4: a subprogram's address (a callback)
    HELPER = 4  #: call src=0: a helper function, by id in ``imm``
    KFUNC = 5  #: call src=2: a kernel function, BTF id in ``imm``, BTF fd index in ``off``
    MAP_FD = 6  #: ld_imm64 src=1: a map by fd
    MAP_VALUE = 7  #: ld_imm64 src=2: an address inside a map's value, by fd
    BTF_ID = 8  #: ld_imm64 src=3: a kernel variable by BTF id
    MAP_IDX = 9  #: ld_imm64 src=5: a map by index into the fd array
    MAP_IDX_VALUE = 10  #: ld_imm64 src=6: an address inside a map's value, by index


#: The references whose target is an instruction of the program (kept as target references by the patch list).
INSTRUCTION_REFS = frozenset({Ref.JUMP, Ref.SUBPROG, Ref.FUNC})
#: The references that make their target the start of a subprogram.
SUBPROG_REFS = frozenset({Ref.SUBPROG, Ref.FUNC})

_CALL_REFS = {CallSrc.HELPER: Ref.HELPER, CallSrc.PSEUDO_CALL: Ref.SUBPROG, CallSrc.KFUNC: Ref.KFUNC}
_LD_REFS = {
    PseudoSrc.MAP_FD: Ref.MAP_FD,
    PseudoSrc.MAP_VALUE: Ref.MAP_VALUE,
    PseudoSrc.BTF_ID: Ref.BTF_ID,
    PseudoSrc.FUNC: Ref.FUNC,
    PseudoSrc.MAP_IDX: Ref.MAP_IDX,
    PseudoSrc.MAP_IDX_VALUE: Ref.MAP_IDX_VALUE,
}


def ref_index(code: int, src: int) -> int:
    """The row of the reference tables for an opcode and a source register field."""
    return code << 4 | src


def _entry(code: int, src: int) -> tuple[Ref, Target]:
    kind = KIND_OF[code]
    if kind in (Kind.JA, Kind.JCOND_K, Kind.JCOND_X, Kind.MAY_GOTO):
        return Ref.JUMP, Target.OFF
    if kind == Kind.GOTOL:
        return Ref.JUMP, Target.IMM
    if kind == Kind.CALL:
        ref = _CALL_REFS.get(src, Ref.NONE)
        return ref, Target.IMM if ref == Ref.SUBPROG else Target.NONE
    if kind == Kind.LD_IMM64:
        ref = _LD_REFS.get(src, Ref.NONE)
        return ref, Target.IMM if ref == Ref.FUNC else Target.NONE
    return Ref.NONE, Target.NONE


_ENTRIES = [_entry(code, src) for code in range(256) for src in range(16)]
#: `Ref` of every (code, src), by `ref_index` (a Python list: per-instruction code indexes it).
REF_OF: list[Ref] = [e[0] for e in _ENTRIES]
#: `Target` of every (code, src), by `ref_index`.
TARGET_OF: list[Target] = [e[1] for e in _ENTRIES]
#: The same tables as uint8 arrays of shape (256, 16): ``REF_TABLE[codes, srcs]``.
REF_TABLE = np.array(REF_OF, dtype=np.uint8).reshape(256, 16)
TARGET_TABLE = np.array(TARGET_OF, dtype=np.uint8).reshape(256, 16)
#: Opcodes that target an instruction for some source field (jumps, calls, ld_imm64): a cheap first screen.
MAY_TARGET = TARGET_TABLE.any(axis=1)
del _ENTRIES
#: The classes every `MAY_TARGET` opcode but ld_imm64 is of (JMP and JMP32): a screen of two
#: compares on the opcode bytes, several times cheaper than the table lookup on every slot.
_TARGET_CLASSES = sorted({c & CLASS_MASK for c in np.flatnonzero(MAY_TARGET).tolist() if c != LD_IMM64})
assert len(_TARGET_CLASSES) == 2 and _TARGET_CLASSES[1] == _TARGET_CLASSES[0] + 1


def may_target_slots(code: np.ndarray) -> np.ndarray:
    """Indices of the opcodes (a uint8 array, `opcodes`) that `MAY_TARGET` marks, ascending."""
    cls = code & np.uint8(CLASS_MASK)
    cls -= np.uint8(_TARGET_CLASSES[0])  # the two classes become 0 and 1, the others wrap above
    cand = np.flatnonzero((cls <= 1) | (code == LD_IMM64))
    return cand[np.take(MAY_TARGET, code[cand])]


def ref_of(code: int, src: int) -> Ref:
    """What the instruction (code, src) refers to."""
    return REF_OF[code << 4 | src]


def target_of(code: int, src: int) -> Target:
    """The field holding the target offset of the instruction (code, src)."""
    return TARGET_OF[code << 4 | src]


def is_subprog_ref(code: int, src: int) -> bool:
    """Does (code, src) make its target a subprogram start (pseudo call, pseudo-func ld_imm64)?"""
    return REF_OF[code << 4 | src] in SUBPROG_REFS


def word_fields(w0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(opcode, src register) of little-endian first-slot words, as uint8 arrays."""
    return (w0 & np.uint64(0xFF)).astype(np.uint8), ((w0 >> np.uint64(12)) & np.uint64(0x0F)).astype(np.uint8)


def word_keys(w0: np.ndarray) -> np.ndarray:
    """``code | src << 8`` of first-slot words (uint16: an index into a table of the 4,096 (code, src)
    pairs), read through the words' bytes on a little-endian machine (two bytes a word, no 64-bit
    temporaries), else from `word_fields`."""
    if np.little_endian and w0.flags.c_contiguous:
        b = w0.view(np.uint8)
        key = (b[1::8] >> 4).astype(np.uint16)
        key <<= 8
        key |= b[::8]
        return key
    code, src = word_fields(w0)
    return code.astype(np.uint16) | src.astype(np.uint16) << 8


def refs_of_words(w0: np.ndarray) -> np.ndarray:
    """The `Ref` of every first-slot word (uint8 array)."""
    code, src = word_fields(w0)
    return REF_TABLE[code, src]


def branch_offsets(slots: np.ndarray, external: Iterable[int] = ()) -> tuple[np.ndarray, np.ndarray]:
    """(slot indices, relative offsets) of every instruction that targets another.

    Covers jumps (16-bit off), gotol (32-bit imm), may_goto, pseudo calls
    (imm) and ld_imm64 with a pseudo-func source (imm of the first slot).
    Slots in `external` (calls an ELF relocation resolves into another
    section: their offset is not one) are left out.
    """
    code = opcodes(slots)
    idx = may_target_slots(code)
    if not len(idx):
        return idx, np.empty(0, dtype=np.int64)
    # A second ld_imm64 slot is never an instruction of its own.
    has_prev = idx > 0
    prev_is_ld = np.zeros(len(idx), dtype=bool)
    prev_is_ld[has_prev] = code[idx[has_prev] - 1] == LD_IMM64
    if prev_is_ld.any():
        idx = idx[insn_starts(slots)[idx]]
    field = TARGET_TABLE[code[idx], slots["regs"][idx] >> 4]
    keep = field != Target.NONE
    idx, field = idx[keep], field[keep]
    rel = np.where(field == Target.OFF, slots["off"][idx].astype(np.int64), slots["imm"][idx].astype(np.int64))
    ext = np.fromiter(external, dtype=np.int64)
    if len(ext):
        keep = ~np.isin(idx, ext)
        idx, rel = idx[keep], rel[keep]
    return idx, rel


def subprog_ref_mask(slots: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Which of the instructions at slots `idx` make their target a subprogram start."""
    ref = REF_TABLE[slots["code"][idx], slots["regs"][idx] >> 4]
    return (ref == Ref.SUBPROG) | (ref == Ref.FUNC)


def check_jump_targets(slots: np.ndarray, external: Iterable[int] = ()) -> None:
    """Raise `DecodeError` if a jump or call lands outside the program or mid-ld_imm64.

    Slots listed in `external` (calls resolved by an ELF relocation to
    another section) are not checked.
    """
    idx, rel = branch_offsets(slots, external)
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
    middle = ~insn_starts(slots)[target]
    if middle.any():
        i = int(idx[np.argmax(middle)])
        raise DecodeError("jump into the middle of an ld_imm64", index=i, byte_offset=i * SLOT_SIZE)


__all__ = [
    "INSTRUCTION_REFS", "MAY_TARGET", "REF_OF", "REF_TABLE", "SUBPROG_REFS", "TARGET_OF", "TARGET_TABLE",
    "Ref", "Target", "branch_offsets", "check_jump_targets", "is_subprog_ref", "ref_index", "ref_of",
    "may_target_slots", "refs_of_words", "subprog_ref_mask", "target_of", "word_fields",
    "word_keys",
]
