"""The interpreter's constant folding (known op known) against the general scalar ALU it short-cuts.

`analyze` computes ``dst op= src`` on two known constants with `const_alu`
instead of ``adjust_scalar_min_max_vals``; both must give the same register.
Hypothesis draws the operands; the reference is `scalar_alu`, the general path.
"""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from bpfpatch.analysis.state import Reg
from bpfpatch.analysis.verifier import ALU_OPS, analyze, scalar_alu
from bpfpatch.program import Program

OPS = ["add", "sub", "mul", "and", "or", "xor", "lsh", "rsh", "arsh"]
U64 = (1 << 64) - 1


def _fields(r: Reg) -> tuple:
    return (r.type, r.var_off, r.smin, r.smax, r.umin, r.umax, r.s32min, r.s32max, r.u32min, r.u32max, r.id)


def _ld64(dst: int, value: int) -> bytes:
    return struct.pack("<BBhIBBhI", 0x18, dst, 0, value & 0xFFFFFFFF, 0, 0, 0, (value >> 32) & 0xFFFFFFFF)


def _state_after_op(a: int, op: str, b: int, is64: bool, use_reg: bool) -> Reg:
    cls = 0x07 if is64 else 0x04
    code = cls | ALU_OPS[op]
    raw = _ld64(0, a)
    if use_reg:
        raw += _ld64(2, b) + struct.pack("<BBhi", code | 0x08, 0x20, 0, 0)
    else:
        raw += struct.pack("<BBhi", code, 0x00, 0, b)
    raw += struct.pack("<BBhi", 0xB7, 0, 0, 0) + struct.pack("<BBhi", 0x95, 0, 0, 0)
    an = analyze(Program.from_bytes(raw), "socket_filter")
    op_slot = 4 if use_reg else 2
    (after,) = an.aux[op_slot].extra["after"]
    return after.regs[0]


@settings(max_examples=200, deadline=None)
@given(a=st.integers(0, U64) | st.sampled_from([0, 1, U64, 1 << 63, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]),
       b=st.integers(-(1 << 31), (1 << 31) - 1) | st.sampled_from([0, 1, -1, 31, 32, 63, 1 << 30]),
       op=st.sampled_from(OPS), is64=st.booleans(), use_reg=st.booleans(), wide=st.integers(0, U64))
def test_constant_fold_equals_general_alu(a, b, op, is64, use_reg, wide):
    if use_reg and wide % 3 == 0:
        b = wide  # a register source may hold any 64-bit value
    bits = 64 if is64 else 32
    if op in ("lsh", "rsh", "arsh") and not use_reg:
        b %= bits  # an out-of-range immediate shift is refused, not folded
    ours = _state_after_op(a, op, b, is64, use_reg)
    src = Reg.known(b)
    want = scalar_alu(op, Reg.known(a), src, is64)
    assert _fields(ours)[:-1] == _fields(want)[:-1]
    assert ours.id == 0
