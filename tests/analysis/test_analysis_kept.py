"""Kept states packed against a key frame (`State.keep`, `KeptState`) read back as what eager snapshots kept.

Every state the analysis keeps (``InsnAux.states`` and ``extra["after"]``) is
compared, field by field, with a deep snapshot of the live state taken at the
moment it was kept (the pre-packing behaviour), over the adversarial
generators, random programs and xdp-tools' objects.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from progtools import kernel_programs

from bpfpatch.adversarial import GENERATORS
from bpfpatch.analysis.facts import InsnAux, MapRef, RegType
from bpfpatch.analysis.state import (
    S32_MAX,
    S32_MIN,
    S64_MAX,
    S64_MIN,
    Frame,
    KeptState,
    Reg,
    Snapshot,
    State,
    mark_known,
)
from bpfpatch.analysis import verifier
from bpfpatch.analysis.verifier import AnalysisError, analyze

XDP_TOOLS = Path("/usr/lib/x86_64-linux-gnu/bpf")


def _reg(r: Reg) -> tuple:
    return tuple(getattr(r, n) for n in Reg.__slots__)


def _fields(s: Snapshot) -> tuple:
    frames = tuple((f.callsite, f.frameno, f.subprog, f.callback_depth, tuple(_reg(r) for r in f.regs),
                    tuple(sorted((k, sl.types, None if sl.spilled is None else _reg(sl.spilled))
                                 for k, sl in f.stack.items())))
                   for f in s.frames)
    return frames, tuple(s.refs), s.may_goto_depth


class _LoggedColumn(list):
    """A column of kept states (``_Env.before`` / ``after``) that logs, per instruction, the fields of the live
    state at each keep there (a deep copy at that moment)."""

    def __init__(self, items: list, log: dict, cur: list) -> None:
        super().__init__(items)
        self.log, self.cur = log, cur

    def __setitem__(self, idx, held) -> None:
        self.log.setdefault(idx, []).append(_fields(self.cur[0].snapshot(None)))
        super().__setitem__(idx, held)


@contextlib.contextmanager
def _eager_log():
    """Per instruction, the fields of the live state at each state kept before and after it (the live state
    is the one `State.keep` was last called on, which the walk may skip when nothing changed): the walk's
    columns log each keep while `_do_check` runs."""
    log: tuple[dict, dict] = ({}, {})
    cur: list = [None]
    saved = State.keep, verifier._do_check

    def keep(self, key, rec):
        cur[0] = self
        return saved[0](self, key, rec)

    def do_check(env, *args):
        env.before = _LoggedColumn(env.before, log[0], cur)
        env.after = _LoggedColumn(env.after, log[1], cur)
        try:
            return saved[1](env, *args)
        finally:
            env.before, env.after = list(env.before), list(env.after)

    State.keep, verifier._do_check = keep, do_check
    try:
        yield log
    finally:
        State.keep, verifier._do_check = saved


def _packed_as_eager(prog, prog_type: str = "socket_filter", budget: int = 20_000) -> int:
    packed = [0]
    orig = KeptState.unpack

    def unpack(self):
        packed[0] += 1
        return orig(self)

    with _eager_log() as log:
        KeptState.unpack = unpack
        try:
            try:
                a = analyze(prog, prog_type, budget=budget)
            except AnalysisError as exc:
                a = exc.analysis
            compared = 0
            assert log[0] and log[1]
            for i, x in enumerate(a.aux):
                if x is None:
                    continue
                before, after = log[0].get(i, []), log[1].get(i, [])
                assert [_fields(s) for s in x.states] == before
                assert [_fields(s) for s in x.extra_get("after", [])] == after
                compared += len(before) + len(after)
        finally:
            KeptState.unpack = orig
    return compared, packed[0]


@pytest.mark.parametrize("gen", sorted(GENERATORS))
def test_adversarial_programs_keep_what_eager_snapshots_kept(gen):
    compared, packed = _packed_as_eager(GENERATORS[gen](300), budget=5_000)
    assert compared > 0
    if gen in ("ld_imm64 run", "nested loops", "unknown branches", "jump fan-in"):
        assert packed > 0  # these keep most states packed


@settings(max_examples=40, deadline=None)
@given(kernel_programs(max_len=40))
def test_random_programs_keep_what_eager_snapshots_kept(prog):
    _packed_as_eager(prog)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["xdpfilt_alw_eth.o", "xdpfilt_dny_tcp.o", "xsk_def_xdp_prog.o"])
def test_xdp_tools_keep_what_eager_snapshots_kept(name):
    from bpfpatch.elf import read_object

    path = XDP_TOOLS / name
    if not path.exists():
        pytest.skip(f"{path} missing (xdp-tools not installed)")
    obj = read_object(path, opaque=True)
    for n in [n for n in obj.programs if n != ".text"]:
        compared, packed = _packed_as_eager(obj.linked_program(n), "xdp", budget=200_000)
        assert compared > 0 and packed > 0


def test_a_packed_state_is_unpacked_once_read_and_later_states_after_it():
    # the list read is made of the states themselves; a state kept after the read joins it unpacked
    from bpfpatch.analysis.state import Frame

    live = State([Frame(0)])
    key, _ = live.keep(None, None)
    live.frames[0].regs[3] = Reg.known(7)
    k2, rec = live.keep(key, key)
    assert k2 is key and rec.__class__ is KeptState
    aux = InsnAux()
    aux.keep_state(rec)
    aux.keep_state(rec)
    first = aux.states
    assert [s.__class__ for s in first] == [Snapshot, Snapshot] and first[0].regs[3].is_const()
    aux.keep_state(rec)
    assert aux.states is first and first[2].__class__ is Snapshot and _fields(first[2]) == _fields(first[0])


@st.composite
def _registers(draw) -> Reg:
    """A register with every field drawn (scalars mostly, pointers and odd values too)."""
    u64, u32 = (1 << 64) - 1, (1 << 32) - 1
    r = Reg(draw(st.sampled_from([RegType.SCALAR] * 4 + [RegType.NOT_INIT, RegType.PTR_TO_STACK])))
    if draw(st.booleans()):
        mark_known(r, draw(st.one_of(st.sampled_from([0, 1, 7, u32, 1 << 63, u64]), st.integers(0, u64))))
    else:
        r.var_off = (draw(st.integers(0, u64)), draw(st.sampled_from([0, 1, u32, u64])))
        r.smin, r.smax = draw(st.integers(S64_MIN, S64_MAX)), draw(st.sampled_from([S64_MAX, -1, 0, 5]))
        r.umin, r.umax = draw(st.sampled_from([0, 1, 9])), draw(st.integers(0, u64))
        r.s32min, r.s32max = draw(st.sampled_from([S32_MIN, 0])), draw(st.integers(S32_MIN, S32_MAX))
        r.u32min, r.u32max = draw(st.integers(0, u32)), draw(st.sampled_from([0, u32]))
    r.id = draw(st.sampled_from([0, 1, u32, u32 + 1]))
    r.subreg_def = draw(st.sampled_from([0, 7, u32]))
    r.precise = draw(st.booleans())
    if draw(st.integers(0, 5)) == 0:
        name, value = draw(st.sampled_from([("off", 8), ("map", MapRef(0, "m")), ("frameno", 1)]))
        setattr(r, name, value)
    return r


def _frame(callsite: int, frameno: int, subprog: int, regs: dict) -> Frame:
    """A live frame as a call makes it (R10 its frame pointer), the registers `regs` set."""
    f = Frame(frameno, callsite, subprog)
    f.regs[10] = Reg.pointer(RegType.PTR_TO_STACK, frameno=frameno)
    for n, r in regs.items():
        f.regs[n] = r
    return f


def _check_keep(live: State, key, rec):
    """`live.keep(key, rec)`, checked to unpack to what an eager snapshot keeps; (key, kept)."""
    eager = _fields(live.snapshot(None))
    key2, kept = live.keep(key, rec)
    got = kept.unpack() if kept.__class__ is KeptState else kept
    assert _fields(got) == eager
    if kept.__class__ is KeptState:
        assert kept.key is key2
    return key2, kept


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_random_registers_pack_against_random_key_registers(data):
    # every field of a register packed as its difference from the key's register, whatever both hold
    draw = data.draw
    live = State([_frame(-1, 0, 0, {n: draw(_registers()) for n in range(10)})])
    key, rec = live.keep(None, None)
    for _ in range(3):
        for n in draw(st.lists(st.integers(0, 9), max_size=4)):
            live.frames[0].regs[n] = draw(_registers())
        if draw(st.booleans()):  # a copy of another register (a linked set)
            live.frames[0].regs[2] = live.frames[0].regs[1].copy()
        key, rec = _check_keep(live, key, rec)


def test_a_call_and_a_return_pack_against_the_key_of_the_caller():
    # a call: the caller's R0-R5 cleared, a callee frame of the caller's R1-R5 and its frame pointer
    ctx = Reg.unknown()
    ctx.umax = 99
    live = State([_frame(-1, 0, 0, {1: ctx, 2: Reg.known(5), 6: Reg.known(1)})])
    key, _ = live.keep(None, None)
    caller = live.frames[0]
    callee = _frame(3, 1, 40, {1: caller.regs[1].copy(), 2: caller.regs[2].copy()})
    for n in range(6):
        caller.regs[n] = Reg()
    live.frames.append(callee)
    k, rec = _check_keep(live, key, key)
    assert k is key and rec.__class__ is KeptState and rec.objs == ()  # no register object: all in the int
    mark_known(callee.regs[0], 1)
    k, rec = _check_keep(live, key, rec)
    assert k is key and rec.__class__ is KeptState
    # a key frame in the callee (four registers differ), then the return packs against it
    for n in range(6, 10):
        callee.regs[n] = Reg.known(n)
    k, rec = _check_keep(live, key, rec)
    assert k is rec and k is not key and len(k.frames) == 2
    assert k.frames[1].regs[1] is key.frames[0].regs[1]  # the callee's R1 shares the caller's (a hint)
    key = k
    live.frames.pop()
    caller.regs[0] = callee.regs[0].copy()
    k, rec = _check_keep(live, key, rec)
    assert k is key and rec.__class__ is KeptState and len(rec.unpack().frames) == 1
    # a call of another subprogram from there: as many frames as the key, another callee: a key frame
    live.frames.append(_frame(9, 1, 50, {}))
    k, rec = _check_keep(live, key, rec)
    assert k is rec and k.frames[1].subprog == 50


def test_many_subprograms_keep_a_few_key_frames():
    a = analyze(GENERATORS["many subprograms"](300), "socket_filter", budget=5_000)
    keys = set()
    for x in a.aux:
        if x is None:
            continue
        for h in (x._states, x._extra):
            for s in (h if h.__class__.__name__ == "_Kept" else (h,)):
                if s.__class__ is KeptState:
                    keys.add(id(s.key))
                elif s is not None:
                    keys.add(id(s))
    assert len(keys) <= 5  # each call and return packed against the key (was a key frame each)
