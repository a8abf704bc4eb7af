"""Pending branches packed while they wait (`Frame.pack`, `pack_reg`): what is unpacked is what was packed.

A frozen pending branch holds the frame it shares with and the registers that
differ from it, a plain scalar in 18 or 74 bytes (`pack_reg`: a kept state's, one int).  Checked field by field: random
registers (hypothesis, every field drawn, pointers and odd values included),
every register of the kept states of clang-built programs and the generators,
and a packed frame against the frame it was made from.
"""

from __future__ import annotations

from array import array

from pathlib import Path

import pytest
from conftest import PROGS, compile_bpf
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfpatch.adversarial import GENERATORS
from bpfpatch.analysis.facts import MapRef, RegType
from bpfpatch.analysis.state import (
    S32_MAX,
    S32_MIN,
    S64_MAX,
    S64_MIN,
    Frame,
    Reg,
    Slot,
    State,
    mark_known,
    pack_reg,
    unpack_reg,
    unpark,
)
from bpfpatch.analysis.verifier import AnalysisError, analyze

U64, U32 = (1 << 64) - 1, (1 << 32) - 1
XDP_TOOLS = Path("/usr/lib/x86_64-linux-gnu/bpf")


def _fields(r: Reg) -> tuple:
    return tuple((n, getattr(r, n)) for n in Reg.__slots__)


def _roundtrip(r: Reg) -> bool:
    """True when `r` was packed into an int (and came back equal), False when it stayed a register."""
    x = pack_reg(r)
    if x is r:
        return False
    assert x.__class__ is int
    back = unpack_reg(x)
    assert back is not r and _fields(back) == _fields(r)
    return True


_u64 = st.one_of(st.sampled_from([0, 1, S32_MAX, U32, S64_MAX, 1 << 63, U64]), st.integers(0, U64))
_s64 = st.one_of(st.sampled_from([S64_MIN, -1, 0, S64_MAX]), st.integers(S64_MIN, S64_MAX))
_u32 = st.one_of(st.sampled_from([0, S32_MAX, U32]), st.integers(0, U32))
_s32 = st.one_of(st.sampled_from([S32_MIN, -1, 0, S32_MAX]), st.integers(S32_MIN, S32_MAX))


@st.composite
def registers(draw) -> Reg:
    r = Reg(draw(st.sampled_from([RegType.SCALAR, RegType.SCALAR, RegType.NOT_INIT, RegType.PTR_TO_STACK,
                                  RegType.PTR_TO_MAP_VALUE])))
    if draw(st.booleans()):
        mark_known(r, draw(_u64))
    else:
        r.var_off = (draw(_u64), draw(_u64))
        r.smin, r.smax, r.umin, r.umax = draw(_s64), draw(_s64), draw(_u64), draw(_u64)
        r.s32min, r.s32max, r.u32min, r.u32max = draw(_s32), draw(_s32), draw(_u32), draw(_u32)
    r.id = draw(st.sampled_from([0, 1, U32, U32 + 1]))
    r.subreg_def = draw(st.sampled_from([0, 7, U32, U32 + 1]))
    r.precise = draw(st.booleans())
    if draw(st.integers(0, 3)) == 0:  # a pointer field or an offset: kept as a register
        name, value = draw(st.sampled_from([("off", 8), ("ref_obj_id", 2), ("range", -2), ("mem_size", 4),
                                            ("btf_name", "task_struct"), ("frameno", 1),
                                            ("map", MapRef(0, "m"))]))
        setattr(r, name, value)
    return r


@settings(max_examples=400, deadline=None)
@given(registers())
def test_a_packed_register_unpacks_to_every_field(r):
    packed = _roundtrip(r)
    plain = (r.type is RegType.SCALAR and r.off == 0 and r.ref_obj_id == 0 and r.range == 0 and r.map is None
             and r.mem_size == 0 and r.btf_name == "" and r.frameno == 0 and r.id <= U32 and r.subreg_def <= U32
             and r.var_off[0] <= U64 and r.var_off[1] <= U64)
    assert packed == plain, _fields(r)


def test_known_values_pack_small_and_bounds_keep_their_sign():
    r = Reg.known(-5 & U64)
    r.id, r.subreg_def, r.precise = 3, 9, True
    x = pack_reg(r)
    assert x & 1 and x.bit_length() <= 2 + 64 + 64 and _roundtrip(r)
    u = Reg.unknown()
    u.smin, u.smax, u.s32min, u.s32max = S64_MIN, -1, S32_MIN, -1
    assert _roundtrip(u) and not pack_reg(u) & 1
    assert unpack_reg(pack_reg(Reg.unknown())).var_off == (0, U64)


def _kept_registers(a) -> list[Reg]:
    out = []
    for x in a.aux:
        if x is None:
            continue
        for s in x.states + x.extra_get("after", []):
            for f in s.frames:
                out += f.regs
                out += [sl.spilled for sl in f.stack.values() if sl.spilled is not None]
    return out


def _object_registers(path) -> list[Reg]:
    from bpfpatch.elf import read_object
    from bpfpatch.progtype import prog_type_of

    obj = read_object(path)
    regs = []
    for name in obj.programs:
        if name == ".text":
            continue
        try:
            a = analyze(obj.linked_program(name), prog_type_of(name))
        except AnalysisError as exc:
            a = exc.analysis
        regs += _kept_registers(a)
    return regs


def test_every_kept_register_of_built_programs_roundtrips(objdir):
    regs = _object_registers(compile_bpf(PROGS / "analysis" / "corpus.c", objdir))
    packed = sum(_roundtrip(r) for r in regs)
    assert len(regs) > 500 and 0 < packed < len(regs)  # scalars packed, the context and stack pointers not


@pytest.mark.parametrize("name", ["xdpfilt_alw_eth.o", "xdp-dispatcher.o"])
def test_every_kept_register_of_xdp_tools_roundtrips(name):
    path = XDP_TOOLS / name
    if not path.exists():
        pytest.skip(f"{path} missing (xdp-tools not installed)")
    regs = _object_registers(path)
    assert len(regs) > 100 and 0 < sum(_roundtrip(r) for r in regs) < len(regs)


@pytest.mark.parametrize("gen", ["nested loops", "unknown branches", "jump fan-in"])
def test_every_kept_register_of_a_generator_roundtrips(gen):
    try:
        a = analyze(GENERATORS[gen](300), "socket_filter", budget=3_000)
    except AnalysisError as exc:
        a = exc.analysis
    regs = _kept_registers(a)
    assert sum(_roundtrip(r) for r in regs) > 100


def test_a_packed_frame_holds_its_changes_and_unpacks_to_the_frame():
    base = Frame(0)
    base.regs[10] = Reg.pointer(RegType.PTR_TO_STACK)
    base.regs[1] = Reg.pointer(RegType.PTR_TO_CTX)
    base.stack[0] = Slot("mmmmmmmm")
    ref = State([base]).snapshot()
    prev = ref.frames[0]
    live = prev.shallow()
    live.regs = [r.copy() for r in prev.regs]
    live.stack = {k: s.copy() for k, s in prev.stack.items()}
    live.regs[0] = Reg.known(7)
    live.regs[2] = Reg.unknown()
    live.regs[2].umax = 99
    live.regs[3] = Reg.pointer(RegType.PTR_TO_CTX, 8)
    blob, items = [], []
    live.pack(prev, blob, items)
    # the frame it shares with, the pointer as an object; the two scalars in the bytes
    assert items[0] is prev and len(items) == 2 and items[1] is live.regs[3]
    assert blob[0] == bytes((1, 3)) and [len(b) for b in blob[1:]] == [18, 74, 2]
    st = State([live])
    back, _, _ = unpark(st.park(ref, 1, 0))
    assert [_fields(r) for r in back.frames[0].regs] == [_fields(r) for r in live.regs]
    assert all(a is not b for a, b in zip(back.frames[0].regs, prev.regs))
    assert back.frames[0].stack[0] is not prev.stack[0]
    live.stack[1] = Slot("00000000")
    blob, items = [], []
    live.pack(prev, blob, items)
    assert blob[0][0] == 3 and set(items[1]) == {0, 1} and items[1][0] is prev.stack[0]
    assert unpark(State([live]).park(ref, 1, 0))[0].frames[0].stack[1].types == "00000000"
    other = Frame(1, callsite=3)
    blob, items = [], []
    other.pack(prev, blob, items)
    assert items[0].__class__ is Frame and items[0] is not prev  # another function's frame: a frozen frame of its own


def _state_fields(st: State) -> tuple:
    frames = tuple((tuple(_fields(r) for r in f.regs), {k: (sl.types, sl.spilled and _fields(sl.spilled))
                                                        for k, sl in f.stack.items()},
                    f.callsite, f.frameno, f.subprog, f.callback_depth) for f in st.frames)
    return (frames, list(st.refs), st.parent, list(st.hist), st.jhist, st.first_idx, st.may_goto_depth,
            st.branches, st.hit, st.miss)


@pytest.mark.parametrize("calls", [0, 1, 2])
def test_a_parked_branch_is_one_tuple_and_unparks_to_the_state(calls):
    # a pending branch waits as one tuple (its walk fields and changed registers in one bytes object, the
    # objects it shares), not a State, a frames tuple and a stack entry; taken up, it is the state it was,
    # owned anew.  Its history may be an array it shares (the live path's, appended to after): its length then
    caller = Frame(0)
    caller.regs[10] = Reg.pointer(RegType.PTR_TO_STACK)
    caller.regs[1] = Reg.pointer(RegType.PTR_TO_CTX)
    caller.stack[0] = Slot("mmmmmmmm")
    frames = [caller] + [Frame(k + 1, callsite=10 * k + 5, subprog=k + 1) for k in range(calls)]
    parent = State([caller.copy()])
    ref = State([f.copy() for f in frames]).snapshot()
    live = State([f.copy() for f in frames])
    live.cur.regs[0] = Reg.known(7)
    live.cur.regs[3] = Reg.unknown()
    live.cur.regs[3].umax = 99
    live.cur.stack[2] = Slot("00000000")
    live.refs, live.parent, live.jhist, live.first_idx, live.may_goto_depth = [4], parent, 3, 17, 1
    live.hist.extend([5, 6, 1 << 40 | 9])
    want = _state_fields(live)
    for r in (ref, None):
        for shared in (None, array("q", live.hist)):
            rec = _copy_state(live).park(r, 812, 811, shared)
            assert rec.__class__ is tuple and rec[0].__class__ is bytes and rec[1] is parent
            if shared is not None:
                assert rec[3] is shared
                shared.extend([77, 78])  # the live path goes on
            assert not any(x.__class__ is State for x in rec[2:])  # the parent checkpoint only
            back, idx, prev = unpark(rec)
            assert (idx, prev) == (812, 811) and _state_fields(back) == want
            assert all(a is not b for f, g in zip(back.frames, live.frames) for a, b in zip(f.regs, g.regs))
            assert back.frames.__class__ is list and back.hist.__class__ is array
    counted = _copy_state(live)
    counted.branches = 1  # a checkpoint's counters: waits as it is
    assert counted.park(ref, 3, 2) == (counted, 3, 2) and unpark((counted, 3, 2)) == (counted, 3, 2)


def _copy_state(st: State) -> State:
    c = st.copy()
    c.refs, c.may_goto_depth = list(st.refs), st.may_goto_depth
    return c


def test_a_kept_state_is_a_snapshot_without_the_walks_bookkeeping():
    from bpfpatch.analysis.state import Snapshot

    a = analyze(GENERATORS["ld_imm64 run"](40), "socket_filter")
    kept = [s for x in a.aux if x is not None for s in x.states]
    assert kept and all(s.__class__ is Snapshot for s in kept)
    s = kept[-1]
    assert s.parent is None and s.hist == () and s.branches == s.jhist == s.first_idx == 0
    assert s.frames.__class__ is tuple and s.regs is s.frames[-1].regs and s.cur is s.frames[-1]
    with pytest.raises(AttributeError):
        s.parent = s  # frozen: there is no room for the walk's bookkeeping
    live = s.copy()
    assert live.__class__ is State and live.frames[0].regs[0].same(s.regs[0]) and live.frames[0] is not s.frames[0]


@settings(max_examples=300, deadline=None)
@given(registers())
def test_a_parked_register_unpacks_to_every_field(r):
    # a pending branch's changed register: 18 bytes a known scalar, 74 a scalar's ranges, else an object
    ref = State([Frame(0)]).snapshot()
    live = State([Frame(0)])
    live.cur.regs[5] = r
    rec = live.park(ref, 1, 0)
    # the bytes: a 49-byte head, the frame's flags and count, the register (none when it is the reference's)
    assert len(rec[0]) - 51 in ((0, 2) if pack_reg(r) is r else (0, 18, 74))
    back = unpark(rec)[0].cur.regs[5]
    assert back is not r and _fields(back) == _fields(r)
