"""Patch buffers prepared once: encoded words, reference plans, and the opcode tables they use.

A patch (a sequence of `Insn` / `PatchInsn` / assembly text) is parsed and
encoded into slot words once; memoized tuples make a patch repeated at many
sites cost one dictionary lookup.  Shared by `PatchList` and its group inserts.
"""

from __future__ import annotations

from array import array
from typing import Any, NamedTuple, Sequence

import numpy as np

from bpfpatch.isa import KIND_OF, LD_IMM64, Insn, Kind
from bpfpatch.isa.refs import REF_OF, SUBPROG_REFS
from bpfpatch.patch.node import _INSN_CACHE as _NODE_INSN_CACHE
from bpfpatch.patch.node import PatchInsn

# Node ids, anchors and original slot indices are 32-bit: a program has far fewer than
# 2**31 nodes, and half-width columns halve the memory traffic of growing and gathering
# them.  One typecode for the array('i') columns, the NumPy dtype derived from it.
ID_TYPECODE = "i"
ID_DTYPE = np.dtype(ID_TYPECODE)

_END = -1  # "no next node"
_NO_ANCHOR = -1
# Values of `PatchList._pend_mark`: where the `replace` fast path may defer.
_FREE, _PENDING, _BLOCKED = 0, 1, 2

# Ready-made runs of -1 (INSERTED, no anchor, no target) for new nodes.
_MINUS_ONES = [array(ID_TYPECODE, [-1] * k) for k in range(17)]
_VALID = [KIND_OF[c] != Kind.INVALID for c in range(256)]


def _is_call_ref(insn: Insn) -> bool:
    """Does the instruction make its target a subprogram start (pseudo call, pseudo func)?"""
    return REF_OF[insn[0] << 4 | insn[2]] in SUBPROG_REFS


def _words(insns: Sequence[Insn]) -> tuple[array, array]:
    """Encoded first and second slot words (little-endian struct bpf_insn) of instructions."""
    w0 = array("Q")
    w1 = array("Q")
    for code, dst, src, off, imm in insns:
        w0.append(code | ((dst & 0xF) | (src << 4)) << 8 | (off & 0xFFFF) << 16 | (imm & 0xFFFFFFFF) << 32)
        w1.append(((imm >> 32) & 0xFFFFFFFF) << 32 if code == LD_IMM64 else 0)
    return w0, w1


# Decoded instructions by slot word: programs repeat instructions, and an `Insn`
# is immutable, so `node.insn` usually costs one dict lookup.
_INSN_CACHE = _NODE_INSN_CACHE  # one dict, shared with `Node.insn`
_INSN_CACHE_MAX = 1 << 16


def _insn_of(w0: int, w1: int) -> Insn:
    code = w0 & 0xFF
    off = (w0 >> 16) & 0xFFFF
    imm = w0 >> 32
    if code == LD_IMM64:
        imm |= (w1 >> 32) << 32
        imm = imm - (1 << 64) if imm >> 63 else imm
    else:
        imm = imm - (1 << 32) if imm >> 31 else imm
    return Insn(code, (w0 >> 8) & 0xF, (w0 >> 12) & 0xF, off - 0x10000 if off >> 15 else off, imm)


def _id_column(values: np.ndarray) -> array:
    """An integer NumPy array as an id column (one memory copy, no Python ints)."""
    out = array(ID_TYPECODE)
    out.frombytes(np.ascontiguousarray(values, dtype=ID_DTYPE).tobytes())
    return out


class _Prepared(NamedTuple):
    """A parsed patch with everything the list needs, computed once (memoized for tuples)."""

    items: list[PatchInsn]
    plan: list[tuple[int, str, int, bool]]  # (item, "buf"|"after"|"node", value, is call ref)
    insns: list[Insn]
    wide: bytes
    aux: list[Any]
    any_aux: bool
    w0: array  # encoded slot words, so linearize never touches the Insn objects
    w1: array
    # The same columns without the last item, ready for `replace` (the node keeps the last).
    head_w0: array
    head_w1: array
    head_wide: bytes
    head_aux: list[Any]
    minus: array  # -1 per head item (orig INSERTED, no anchor, no target)
    last_w0: int  # the words of the last item: what a replaced node becomes
    last_w1: int
    last_wide: int
    # Can `replace` defer it to `_flush`: new nodes before the node, references only
    # inside the buffer or to the node after it, no calls (memoized patches only).
    deferrable: bool


def _prepare(items: list[PatchInsn], plan: list[tuple[int, str, int]]) -> _Prepared:
    insns = [it[0] for it in items]
    aux = [it[2] for it in items]
    w0, w1 = _words(insns)
    return _Prepared(
        items,
        [(i, how, v, _is_call_ref(items[i][0])) for i, how, v in plan],
        insns,
        bytes(i[0] == LD_IMM64 for i in insns),
        aux,
        any(a is not None for a in aux),
        w0,
        w1,
        w0[:-1],
        w1[:-1],
        bytes(i[0] == LD_IMM64 for i in insns[:-1]),
        aux[:-1],
        array(ID_TYPECODE, [-1] * (len(insns) - 1)),
        w0[-1],
        w1[-1],
        int(insns[-1][0] == LD_IMM64),
        len(insns) > 1 and aux[-1] is None and all(how != "node" and not _is_call_ref(items[i][0]) for i, how, _ in plan),
    )


