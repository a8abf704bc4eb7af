"""The abstract domains alone: tnums and scalar ranges are sound against concrete execution.

Every test draws abstract values together with a concrete member, runs the
operation both ways and checks that the abstract result still holds the
concrete one (and that the verifier's range bookkeeping stays consistent).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bpfpatch.analysis.state import Reg, reg_bounds_sync, s32, s64, update_bounds64
from bpfpatch.analysis.tnum import (
    U32,
    U64,
    tnum_add,
    tnum_and,
    tnum_arshift,
    tnum_in,
    tnum_intersect,
    tnum_lshift,
    tnum_mul,
    tnum_or,
    tnum_range,
    tnum_rshift,
    tnum_step,
    tnum_sub,
    tnum_xor,
)
from bpfpatch.analysis.verifier import branch_refine, scalar_alu

u64s = st.one_of(st.integers(0, U64), st.sampled_from([0, 1, 2, 7, 255, 0xFFFF, U32, 1 << 31, 1 << 63, U64, U64 - 1]))


@st.composite
def tnum_and_member(draw):
    mask = draw(u64s)
    value = draw(u64s) & ~mask & U64
    pick = draw(u64s) & mask
    return (value, mask), value | pick


def holds(t, x):
    return (x & ~t[1] & U64) == t[0]


@given(tnum_and_member(), tnum_and_member())
def test_tnum_binary_ops_are_sound(a, b):
    (ta, x), (tb, y) = a, b
    assert holds(tnum_add(ta, tb), (x + y) & U64)
    assert holds(tnum_sub(ta, tb), (x - y) & U64)
    assert holds(tnum_and(ta, tb), x & y)
    assert holds(tnum_or(ta, tb), x | y)
    assert holds(tnum_xor(ta, tb), x ^ y)
    assert holds(tnum_mul(ta, tb), (x * y) & U64)


@given(tnum_and_member(), st.integers(0, 63))
def test_tnum_shifts_are_sound(a, k):
    t, x = a
    assert holds(tnum_lshift(t, k), (x << k) & U64)
    assert holds(tnum_rshift(t, k), x >> k)
    assert holds(tnum_arshift(t, k, 64), (s64(x) >> k) & U64)
    if k < 32:
        assert holds(tnum_arshift(t, k, 32), (s32(x) >> k) & U32)


@given(u64s, u64s, u64s)
def test_tnum_range_and_intersect(lo, hi, x):
    lo, hi = min(lo, hi), max(lo, hi)
    t = tnum_range(lo, hi)
    assert holds(t, lo) and holds(t, hi)
    if lo <= x <= hi:
        assert holds(t, x)
        assert tnum_in(t, (x, 0))
        assert holds(tnum_intersect(t, (x & ~0xF & U64, 0xF)), x) or not holds((x & ~0xF & U64, 0xF), x)


@st.composite
def scalar_and_member(draw):
    """A scalar register built from a random u64/s64 range and known bits, with a concrete member."""
    x = draw(u64s)
    r = Reg.unknown()
    lo = draw(st.integers(0, x))
    hi = draw(st.integers(x, U64))
    r.umin, r.umax = lo, hi
    if draw(st.booleans()):
        slo = draw(st.integers(-(1 << 63), s64(x)))
        shi = draw(st.integers(s64(x), (1 << 63) - 1))
        r.smin, r.smax = slo, shi
    mask = draw(u64s) | draw(st.sampled_from([0, 0xFF, U32, U64]))
    r.var_off = (x & ~mask & U64, mask & U64)
    reg_bounds_sync(r)
    return r, x


def contains(r: Reg, x: int) -> bool:
    x &= U64
    return (r.umin <= x <= r.umax and r.smin <= s64(x) <= r.smax and r.u32min <= (x & U32) <= r.u32max
            and r.s32min <= s32(x) <= r.s32max and holds(r.var_off, x))


@given(scalar_and_member())
def test_bounds_sync_keeps_members(a):
    r, x = a
    assert contains(r, x)


def concrete(op: str, x: int, y: int, is64: bool) -> int | None:
    bits = 64 if is64 else 32
    m = (1 << bits) - 1
    x, y = x & m, y & m
    sx = x - (1 << bits) if x >> (bits - 1) else x
    if op == "add":
        v = x + y
    elif op == "sub":
        v = x - y
    elif op == "mul":
        v = x * y
    elif op == "and":
        v = x & y
    elif op == "or":
        v = x | y
    elif op == "xor":
        v = x ^ y
    elif op in ("lsh", "rsh", "arsh"):
        if y >= bits:
            return None
        v = x << y if op == "lsh" else x >> y if op == "rsh" else sx >> y
    else:
        return None
    return v & m


@settings(max_examples=300)
@given(st.sampled_from(["add", "sub", "mul", "and", "or", "xor", "lsh", "rsh", "arsh"]), scalar_and_member(),
       scalar_and_member(), st.booleans())
def test_scalar_alu_is_sound(op, a, b, is64):
    (dst, x), (src, y) = a, b
    if op in ("lsh", "rsh", "arsh"):
        y %= 64 if is64 else 32
        src = Reg.known(y)
    v = concrete(op, x, y, is64)
    if v is None:
        return
    out = scalar_alu(op, dst, src, is64)
    assert contains(out, v), (op, x, y, is64, out)


@settings(max_examples=300)
@given(st.sampled_from(["jeq", "jne", "jgt", "jge", "jlt", "jle", "jset", "jsgt", "jsge", "jslt", "jsle"]),
       scalar_and_member(), scalar_and_member(), st.booleans())
def test_branch_refinement_is_sound(op, a, b, is32):
    (dst, x), (src, y) = a, b
    m = U32 if is32 else U64
    xv, yv = x & m, y & m
    bits = 32 if is32 else 64
    sx = xv - (1 << bits) if xv >> (bits - 1) else xv
    sy = yv - (1 << bits) if yv >> (bits - 1) else yv
    taken = {"jeq": xv == yv, "jne": xv != yv, "jgt": xv > yv, "jge": xv >= yv, "jlt": xv < yv, "jle": xv <= yv,
             "jset": bool(xv & yv), "jsgt": sx > sy, "jsge": sx >= sy, "jslt": sx < sy, "jsle": sx <= sy}[op]
    pred, t, f = branch_refine(op, dst, src, is32)
    if pred >= 0:
        assert bool(pred) == taken
    side = t if taken else f
    assert side is not None, "the concrete outcome was called impossible"
    assert contains(side[0], x) and contains(side[1], y)


small_tnums = st.integers(0, 255).flatmap(lambda m: st.tuples(st.just(m), st.integers(0, 255).map(lambda v: v & ~m)))


@given(small_tnums.map(lambda t: (t[1], t[0])), st.integers(0, 300))
def test_tnum_step_is_the_next_member(t, z):
    v, m = t
    members = [v | x for x in range(256) if x & ~m == 0]
    want = v | m if z >= v | m else v if z < v else min(w for w in members if w > z)
    assert tnum_step(t, z) == want


@given(small_tnums.map(lambda t: (t[1], t[0])), st.integers(0, 255), st.integers(0, 255),
       st.sampled_from([0, 1 << 40, U64 - 255]))
def test_one_member_in_range_is_known(t, lo, hi, base):
    """6.18's __update_reg64_bounds: a tnum with exactly one member in [umin, umax] makes the register that
    value; with two or more, the ranges are only clamped to the tnum (the 6.12 rule)."""
    v, m = t[0] + base, t[1]
    if lo > hi:
        lo, hi = hi, lo
    r = Reg(Reg.unknown().type)
    r.var_off, r.umin, r.umax = (v, m), base + lo, base + hi
    inside = [v | x for x in range(256) if x & ~m == 0 and base + lo <= v | x <= base + hi]
    update_bounds64(r)
    if len(inside) == 1:
        assert r.umin == r.umax == inside[0]
        if r.var_off != (inside[0], 0):  # the kernel's one exception: the range is already that one value
            assert r.umin == r.umax == v | m
    elif inside:
        assert r.var_off == (v, m) and r.umin == max(base + lo, v) and r.umax == min(base + hi, v | m)
