"""Pending branches packed while they wait (`Frame.pack`, `pack_reg`): what is unpacked is what was packed.

A frozen pending branch is a record of the walk's `ParkedStack`: the frame it shares with and the registers
that differ from it, a plain scalar in 6 to 74 bytes (`pack_reg`: a kept state's, one int).  Checked field by
field: random registers (hypothesis, every field drawn, pointers and odd values included), every register of the
kept states of clang-built programs and the generators, a packed frame against the frame it was made from, and
random pushes and pops against copies made before each push.
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
    ParkedStack,
    Reg,
    Slot,
    State,
    mark_known,
    pack_reg,
    check_frozen,
    record_frozen,
    unpack_reg,
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
    buf, items = bytearray(), []
    live.pack(prev, buf, items)
    # the frame it shares with, the pointer as an object; the two scalars in the bytes: the known value in 6
    # bytes (no id, no subreg_def, 32 bits), the ranges in 66, the pointer's number and kind in 2
    assert items[0] is prev and len(items) == 2 and items[1] is live.regs[3]
    assert buf[:2] == bytes((1, 3)) and len(buf) == 2 + 6 + 66 + 2
    st = State([live])
    back, _, _ = _unpark(st, ref, 1, 0)
    assert [_fields(r) for r in back.frames[0].regs] == [_fields(r) for r in live.regs]
    assert all(a is not b for a, b in zip(back.frames[0].regs, prev.regs))
    assert back.frames[0].stack[0] is not prev.stack[0]
    live.stack[1] = Slot("00000000")
    buf, items = bytearray(), []
    live.pack(prev, buf, items)
    assert buf[0] == 3 and set(items[1]) == {0, 1} and items[1][0] is prev.stack[0]
    assert _unpark(State([live]), ref, 1, 0)[0].frames[0].stack[1].types == "00000000"
    other = Frame(1, callsite=3)
    buf, items = bytearray(), []
    other.pack(prev, buf, items)
    assert items[0].__class__ is Frame and items[0] is not prev  # another function's frame: a frozen frame of its own
    assert buf == bytes(2)


def _unpark(st: State, ref, idx: int, prev: int, hist=None) -> tuple:
    """`st` pushed on a new `ParkedStack` and popped again (and the stack left empty)."""
    ps = ParkedStack()
    entry = ps.push(st, ref, idx, prev, hist)
    out = ps.pop(entry)
    assert len(ps) == 0 and not ps.buf and not ps.objs
    return out


def _state_fields(st: State) -> tuple:
    frames = tuple((tuple(_fields(r) for r in f.regs), {k: (sl.types, sl.spilled and _fields(sl.spilled))
                                                        for k, sl in f.stack.items()},
                    f.callsite, f.frameno, f.subprog, f.callback_depth) for f in st.frames)
    return (frames, list(st.refs), st.parent, list(st.hist), st.jhist, st.first_idx, st.may_goto_depth,
            st.branches, st.hit, st.miss)


@pytest.mark.parametrize("calls", [0, 1, 2])
def test_a_parked_branch_is_a_record_and_pops_to_the_state(calls):
    # a pending branch waits as a record of the walk's `ParkedStack` (its walk fields and changed registers
    # appended to one bytearray, the objects it shares to one list), not a State, a frames tuple and a stack
    # entry; taken up, it is the state it was, owned anew.  Its history may be an array it shares (the live
    # path's, appended to after): its length then
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
            ps = ParkedStack()
            entry = ps.push(_copy_state(live), r, 812, 811, shared)
            assert entry is ps and len(ps) == 1 and ps.objs[0] is parent
            if shared is not None:
                assert ps.objs[2] is shared
                shared.extend([77, 78])  # the live path goes on
            assert not any(x.__class__ is State for x in ps.objs[1:])  # the parent checkpoint only
            back, idx, prev = ps.pop(entry)
            assert (idx, prev) == (812, 811) and _state_fields(back) == want
            assert all(a is not b for f, g in zip(back.frames, live.frames) for a, b in zip(f.regs, g.regs))
            assert back.frames.__class__ is list and back.hist.__class__ is array
            assert len(ps) == 0 and not ps.buf and not ps.objs
    counted = _copy_state(live)
    counted.branches = 1  # a checkpoint's counters: waits as it is
    ps = ParkedStack()
    assert ps.push(counted, ref, 3, 2) == (counted, 3, 2) and ps.pop((counted, 3, 2)) == (counted, 3, 2)
    assert len(ps) == 0 and not ps.buf


@pytest.mark.parametrize("spilled", [False, True])
def test_a_branch_of_the_checkpoint_holding_its_base_waits_on_the_checkpoint(spilled):
    # the walk's checkpoint takes the frames of the snapshot its branches are packed against; precision marks
    # later replace them with copies (registers made precise).  A branch of that checkpoint waits on the
    # checkpoint's frame, not the snapshot's (no frame of its own kept alive beside the marked copy), and pops
    # as it was pushed: the marks made since do not reach it.  A base with a spilled register (marks copy those
    # too) and slots the branch shares: the snapshot's frame, as before
    base = Frame(0)
    base.regs[10] = Reg.pointer(RegType.PTR_TO_STACK)
    base.regs[1] = Reg.unknown()
    base.regs[1].umax = 99
    base.regs[2] = Reg.known(5)
    base.regs[3] = Reg.known(6)
    base.regs[3].precise = True
    base.stack[0] = Slot("rrrrrrrr", Reg.known(3)) if spilled else Slot("mmmmmmmm")
    ref = State([base]).snapshot()
    ckpt = State([])
    ckpt.frames, ckpt.branches = ref.frames, 1
    live = State([base.copy()])
    live.cur.regs[0] = Reg.known(7)
    live.parent = ckpt
    want = _state_fields(live)
    record_frozen()
    try:
        ps = ParkedStack()
        entry = ps.push(_copy_state(live), ref, 5, 4)
        assert entry is ps and ps.objs[0] is ckpt
        assert ps.objs[2] is (ref.frames[0] if spilled else ckpt)
        marks = [("r", 0, 1), ("r", 0, 2)] + ([("s", 0, 0)] if spilled else [])
        ckpt.set_precise(marks)
        assert ckpt.frames[0] is not ref.frames[0] and ckpt.frames[0].regs[1].precise
        back, idx, prev = ps.pop(entry)
        assert (idx, prev) == (5, 4) and _state_fields(back) == want
        assert back.cur.regs[3].precise and not back.cur.regs[1].precise
        assert len(ps) == 0 and not ps.buf and not ps.objs
        check_frozen()
    finally:
        record_frozen(False)


def _random_state(rng, ref_frames: list[Frame], parents: list, refs: list, plain: bool = False) -> State:
    """A live state like the walk's: `ref_frames`' frames copied, some registers and slots changed, some frames
    another function's, walk fields of any width (a jump target out of the program included), its parent and
    references from `parents` and `refs` (shared objects, as the branches of one path share them).  `plain`:
    only scalars changed, in the frames of `ref_frames`."""
    frames = []
    for k, p in enumerate(ref_frames[:rng.randint(1, len(ref_frames))]):
        f = p.copy() if plain or rng.random() < 0.8 else Frame(k, callsite=rng.randint(0, 9), subprog=k)
        for n in rng.sample(range(10), rng.randint(0, 3)):
            kind = rng.choice([0, 1] if plain else [0, 0, 1, 2, 3, 4])
            if kind == 0:
                f.regs[n] = Reg.known(rng.choice([0, 7, U32, U32 + 1, U64]))
            elif kind == 1:
                f.regs[n] = Reg.unknown()
                f.regs[n].umax = rng.randint(0, U64)
            elif kind == 2:
                f.regs[n] = Reg.pointer(RegType.PTR_TO_CTX, rng.randint(0, 8))
            elif kind == 3:
                f.regs[n] = Reg()  # never written
            else:
                f.regs[n] = f.regs[n].copy()  # equal to the reference's, a new object
            f.regs[n].id = rng.choice([0, 0, 3, U32])
            f.regs[n].subreg_def = rng.choice([0, 0, 9, U32])
            f.regs[n].precise = rng.random() < 0.3
        if not plain and rng.random() < 0.2:
            f.stack[rng.randint(0, 3)] = Slot(rng.choice(["00000000", "mmmmmmmm"]))
        frames.append(f)
    st = State(frames)
    st.refs = rng.choice(refs)
    st.parent = rng.choice(parents)
    wide = rng.choice([1 << 16, 1 << 16, 1 << 32, 1 << 40])
    st.jhist, st.first_idx, st.may_goto_depth = (rng.randrange(wide) for _ in range(3))
    st.hist.extend(rng.randrange(1 << 20) for _ in range(rng.randint(0, 5)))
    st.branches = rng.random() < 0.1  # a checkpoint's counters: not packed
    return st


@pytest.mark.parametrize("seed", range(6))
def test_the_parked_stack_pops_in_order_what_was_pushed(seed):
    # pushes and pops in any order: each pop gives the newest branch pushed and not yet popped, equal in every
    # field to a copy made before it was pushed, owning its frames; nothing frozen changed; empty at the end.
    # Branches of one path share their objects: a record whose objects are those `objs` ends with stores none
    import random

    rng = random.Random(seed)
    base = Frame(0)
    base.regs[10] = Reg.pointer(RegType.PTR_TO_STACK)
    base.regs[1] = Reg.pointer(RegType.PTR_TO_CTX)
    base.regs[2] = Reg.known(5)
    base.stack[0] = Slot("mmmmmmmm")
    callee = Frame(1, callsite=4, subprog=1)
    ref = State([base, callee]).snapshot()
    record_frozen()
    parents, refs = [None, State([Frame(0)]), State([Frame(0)])], [[], [], [2, 5]]
    paths = [array("q", [1, 2]), array("q")]  # the live paths' histories: only ever appended to
    shared_objs = 0
    try:
        ps = ParkedStack()
        stack: list = []
        want: list = []
        for _ in range(400):
            if stack and rng.random() < 0.4:
                back, idx, prev = ps.pop(stack.pop())
                w, widx, wprev = want.pop()
                assert (idx, prev) == (widx, wprev) and _state_fields(back) == w
                assert all(f.regs.__class__ is list for f in back.frames)
                assert all(a is not b for f, g in zip(back.frames, ref.frames) for a, b in zip(f.regs, g.regs))
                continue
            plain = rng.random() < 0.5  # a branch of the path pushing now: its parent and references
            st = _random_state(rng, [f.copy() for f in ref.frames], parents[1:2] if plain else parents,
                               refs[:1] if plain else refs, plain)
            idx = rng.choice([rng.randrange(1 << 16), rng.randrange(1 << 16), rng.randrange(1 << 33),
                              -1 - rng.randrange(9)])
            prev = rng.randrange(1 << 16)
            shared = None
            if plain or rng.random() < 0.5:
                shared = paths[0] if plain else rng.choice(paths)  # the live path's, this step's entry its last
                if rng.random() < 0.3:
                    shared.append(rng.randrange(1 << 40))
                st.hist = array("q", shared)
            want.append((_state_fields(st), idx, prev))
            entry = ps.push(st, ref if plain else rng.choice([ref, None]), idx, prev, shared)
            assert entry is ps or entry == (st, idx, prev)
            shared_objs += entry is ps and ps.buf[-1] >> 7
            if shared is not None and rng.random() < 0.3:
                shared.extend([77, 78])  # the live path goes on: the branch's length is kept
            stack.append(entry)
            assert len(ps) == sum(e is ps for e in stack)
        while stack:
            back, idx, prev = ps.pop(stack.pop())
            w, widx, wprev = want.pop()
            assert (idx, prev) == (widx, wprev) and _state_fields(back) == w
        assert len(ps) == 0 and not ps.buf and not ps.objs
        assert check_frozen() > 0 and shared_objs > 10
    finally:
        record_frozen(False)


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
    ps = ParkedStack()
    entry = ps.push(live, ref, 1, 0)
    # the bytes: the frame's flags and count, the register (none when it is the reference's), a 16-byte head
    assert len(ps.buf) - 18 in ((0, 2) if pack_reg(r) is r else (0, 6, 10, 14, 18, 66, 70, 74))
    back = ps.pop(entry)[0].cur.regs[5]
    assert back is not r and _fields(back) == _fields(r)
