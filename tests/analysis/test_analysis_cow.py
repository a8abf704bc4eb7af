"""Copy on write between the verifier's states: no write to one state leaks into another.

Kept snapshots, checkpoints and pending branches share registers, slots and
frames (`bpfpatch.analysis.state`).  Two checks: `record_frozen` logs every
object as it is frozen and `check_frozen` finds any that changed after; and
the same analysis with nothing shared (every frozen state a deep copy, the
pre-copy-on-write behaviour) gives the same processed count, verdict, log and
kept states.  Over random programs (hypothesis), the adversarial generators,
our clang-built corpus and xdp-tools' objects.
"""

from __future__ import annotations

import contextlib
from array import array
from pathlib import Path

import pytest
from conftest import PROGS, compile_bpf
from hypothesis import given, settings
from progtools import kernel_programs

from bpfpatch.adversarial import GENERATORS
from bpfpatch.analysis import state as state_mod
from bpfpatch.analysis import verifier
from bpfpatch.analysis.state import Checkpoint, ParkedStack, State, check_frozen, record_frozen
from bpfpatch.analysis.verifier import AnalysisError, analyze
from bpfpatch.analysis.vlog import format_state

XDP_TOOLS = Path("/usr/lib/x86_64-linux-gnu/bpf")
XDP_SAMPLE = ["xdpfilt_alw_eth.o", "xdpfilt_dny_tcp.o", "xdpfilt_alw_ip.o", "xsk_def_xdp_prog.o", "xdp-dispatcher.o"]


def _deep_snapshot(self: State, prev: State | None = None) -> State:
    s = State([f.copy() for f in self.frames])
    s.refs, s.may_goto_depth = list(self.refs), self.may_goto_depth  # a kept state has no walk bookkeeping
    return s


def _park_unshared(self, st, ref, idx, prev, hist=None):
    """A pending branch waits as it is, taken up as it is, with a history of its own (a copy of `hist`, the
    live path's, when given): not a `ParkedStack` record."""
    if hist is not None:
        st.hist = array("q", hist)
    return (st, idx, prev)


@contextlib.contextmanager
def _nothing_shared():
    """Every frozen state a deep copy of its own: what the analysis did before copy on write."""
    saved = State.snapshot, ParkedStack.push, State.keep
    State.snapshot = _deep_snapshot
    ParkedStack.push = _park_unshared
    State.keep = lambda self, key, rec: (lambda s: (s, s))(_deep_snapshot(self))  # kept whole, nothing packed
    try:
        yield
    finally:
        State.snapshot, ParkedStack.push, State.keep = saved


def _result(prog, prog_type: str, budget: int) -> tuple:
    try:
        a = analyze(prog, prog_type, budget=budget, log=True)
        err = ""
    except AnalysisError as exc:
        a, err = exc.analysis, f"{exc.index}: {exc.message}"
    states = [[format_state(s) for s in (x.states + x.extra_get("after", []))] if x is not None else None
              for x in a.aux]
    facts = [(x.seen, x.ptr_type, x.zext_dst, x.map, x.call_helper) if x is not None else None for x in a.aux]
    return err, a.processed, a.total_states, a.log, facts, states


def _same_as_unshared(prog, prog_type: str = "socket_filter", budget: int = 20_000) -> int:
    record_frozen()
    saved, verifier.FREEZE_AFTER = verifier.FREEZE_AFTER, 0  # every pending branch frozen, not only a deep stack's
    try:
        shared = _result(prog, prog_type, budget)
        checked = check_frozen()
    finally:
        record_frozen(False)
        verifier.FREEZE_AFTER = saved
    with _nothing_shared():
        unshared = _result(prog, prog_type, budget)
    assert shared[:3] == unshared[:3]
    assert shared[3] == unshared[3], "the logs differ"
    assert shared[4] == unshared[4], "the facts differ"
    assert shared[5] == unshared[5], "the kept states differ"
    return checked


@settings(max_examples=60, deadline=None)
@given(kernel_programs(max_len=40))
def test_random_programs_analyze_as_with_nothing_shared(prog):
    _same_as_unshared(prog)


@pytest.mark.parametrize("gen", sorted(GENERATORS))
def test_adversarial_programs_analyze_as_with_nothing_shared(gen):
    checked = _same_as_unshared(GENERATORS[gen](300), budget=5_000)
    assert checked > 0


def test_frozen_change_is_caught():
    # the checker itself: a frozen register changed in place is reported
    from bpfpatch.analysis.state import Frame

    record_frozen()
    try:
        f = Frame(0)
        f.regs[3].type = state_mod.RegType.SCALAR
        frozen = f.snapshot(None)
        assert check_frozen() > 0
        frozen.regs[3].umin = 5
        with pytest.raises(AssertionError, match="frozen Reg changed"):
            check_frozen()
    finally:
        record_frozen(False)


def test_precision_marks_replace_what_they_change():
    # a checkpoint's precision mark must not reach the frozen states it shares a register with
    from bpfpatch.analysis.state import Frame, Reg

    f = Frame(0)
    f.regs[2] = Reg.unknown()
    a = State([f]).snapshot()
    b = State([f]).snapshot(a)
    checkpoint = State(list(b.frames))
    assert checkpoint.frames[0].regs[2] is a.frames[0].regs[2]
    checkpoint.set_precise([("r", 0, 2)])
    assert checkpoint.frames[0].regs[2].precise
    assert not a.frames[0].regs[2].precise and not b.frames[0].regs[2].precise
    assert checkpoint.frames[0].regs[1] is a.frames[0].regs[1]  # the rest still shared


def test_a_checkpoint_and_its_parent_share_one_precise_copy():
    # a marking pass walks a path up: what the child's marks replaced, its parent's marks replace by the same copy
    from bpfpatch.analysis.state import Frame, Reg

    record_frozen()
    try:
        f = Frame(0)
        f.regs[2] = Reg.unknown()
        a = State([f]).snapshot()
        parent, child = State(a.frames), State(a.frames)  # the very same frozen frame
        f.regs[3] = Reg.known(5)
        b = State([f]).snapshot(a)  # another frame, sharing r2 with a's
        other = State(b.frames)
        memo = child.set_precise([("r", 0, 2)])
        parent.set_precise([("r", 0, 2)], memo)
        assert parent.frames[0] is child.frames[0]  # the same frame given the same marks: one new frame
        other.set_precise([("r", 0, 2)], memo)
        assert other.frames[0] is not child.frames[0]
        assert other.frames[0].regs[2] is child.frames[0].regs[2]  # one precise copy for the three
        copy = child.frames[0].regs[2]
        assert copy.precise and copy is not a.frames[0].regs[2] and not a.frames[0].regs[2].precise
        for st in (parent, child, other):
            fr = st.frames[0]
            assert st.frames.__class__ is tuple and fr.regs.__class__ is tuple and not hasattr(fr, "own")
        assert child.frames[0].regs[1] is a.frames[0].regs[1]  # the rest still shared
        assert check_frozen() > 0
    finally:
        record_frozen(False)


def test_precise_slots_share_one_copy():
    from bpfpatch.analysis.state import STACK_SPILL, Frame, Reg, Slot

    f = Frame(0)
    f.stack[1] = Slot(STACK_SPILL * 8, Reg.unknown())
    a = State([f]).snapshot()
    child, parent = State(a.frames), State(a.frames)
    memo = child.set_precise([("s", 0, 1), ("r", 0, 0)])
    parent.set_precise([("r", 0, 0), ("s", 0, 1)], memo)  # the same marks in another order
    assert parent.frames[0] is child.frames[0]
    sl = child.frames[0].stack[1]
    assert sl.spilled.precise and not a.frames[0].stack[1].spilled.precise and sl is not a.frames[0].stack[1]
    assert a.frames[0].stack is not child.frames[0].stack  # the frozen stack not written


def test_a_lone_checkpoint_is_no_list():
    # most explored lists would hold one checkpoint: the dict holds it as itself, a list from the second one
    prog = GENERATORS["unknown branches"](400)
    seen = [{}]
    saved = verifier._is_state_visited

    def spy(env, cur, idx):
        seen[0] = dict(env.explored)  # as the walk left it (the checkpoints go when it ends)
        return saved(env, cur, idx)

    verifier._is_state_visited = spy
    try:
        with contextlib.suppress(AnalysisError):
            analyze(prog, "socket_filter", budget=5_000, keep_states=False)
    finally:
        verifier._is_state_visited = saved
    got = list(seen[0].values())
    assert any(x.__class__ is Checkpoint for x in got)
    assert all(x.__class__ is Checkpoint or len(x) > 1 for x in got)
    assert all(y.__class__ is Checkpoint for x in got if x.__class__ is list for y in x)


def test_our_corpus_analyzes_as_with_nothing_shared(objdir):
    from bpfpatch.elf import read_object
    from bpfpatch.progtype import prog_type_of

    obj = read_object(compile_bpf(PROGS / "analysis" / "corpus.c", objdir))
    names = [n for n in obj.programs if n != ".text"]
    assert names
    for name in names:
        _same_as_unshared(obj.linked_program(name), prog_type_of(name).name.lower(), budget=200_000)


@pytest.mark.slow
@pytest.mark.parametrize("name", XDP_SAMPLE)
def test_xdp_tools_analyze_as_with_nothing_shared(name):
    from bpfpatch.elf import read_object

    path = XDP_TOOLS / name
    if not path.exists():
        pytest.skip(f"{path} missing (xdp-tools not installed)")
    obj = read_object(path, opaque=True)
    names = [n for n in obj.programs if n != ".text"]
    for n in names:
        _same_as_unshared(obj.linked_program(n), "xdp", budget=200_000)


def _precise_after_checkpoint():
    """r1 is 1 or 0 on two paths that meet; the first path's checkpoint at 14 is made with r1 imprecise, and
    only later does a branch on r1 (known there) mark it precise in that checkpoint.  The second path (r1 = 0)
    must then not be pruned at 14: 18 + 14 processed instructions (28 if the mark were lost)."""
    from bpfpatch.isa.build import JmpOp, call_helper, exit_insn, ja, jmp_imm, mov64_imm, mov64_reg

    insns = [call_helper("get_prandom_u32"), mov64_reg(6, 0), mov64_imm(1, 0),
             jmp_imm(JmpOp.JGT, 6, 10, 1), mov64_imm(1, 1)]
    insns += [mov64_imm(3, 0)] * 8 + [ja(0), ja(0)]
    insns += [jmp_imm(JmpOp.JEQ, 1, 1, 1), mov64_imm(0, 0), mov64_imm(0, 0), exit_insn()]
    from bpfpatch import Program

    return Program.from_insns(insns)


def test_a_mark_made_after_a_checkpoint_keeps_the_next_path_from_pruning_there():
    # Checkpoint.set_precise marks registers by a bit of its pmask, not in the register objects: states_equal
    # must read it (a lost mark prunes the r1 = 0 path at 14), and the frames stay the snapshot's
    a = analyze(_precise_after_checkpoint(), "socket_filter", log=True)
    log = a.log
    assert a.processed == 32, a.processed
    assert "14: safe" not in log


def test_checkpoint_marks_leave_its_frames_and_registers_as_they_were():
    from bpfpatch.analysis.state import STACK_SPILL, Frame, Reg, Slot

    f = Frame(0)
    f.regs[2] = Reg.unknown()
    f.stack[1] = Slot(STACK_SPILL * 8, Reg.unknown())
    snap = State([f]).snapshot()
    ck = Checkpoint.__new__(Checkpoint)
    ck.frames, ck.refs, ck.may_goto_depth = snap.frames, snap.refs, 0
    ck.parent, ck.hist, ck.branches, ck.hit, ck.miss, ck.pmask = None, array("q"), 1, 0, 0, 0
    record_frozen()
    try:
        ck.set_precise([("r", 0, 2)])
        assert ck.frames is snap.frames and not ck.frames[0].regs[2].precise  # nothing replaced, nothing written
        assert ck.reg_precise(0, 2) and not ck.reg_precise(0, 3) and not snap.reg_precise(0, 2)
        live = ck.copy()
        assert live.frames[0].regs[2].precise and not live.frames[0].regs[3].precise
        ck.set_precise([("s", 0, 1)])  # a slot: a new copy, as State.set_precise
        assert ck.frames is not snap.frames and ck.frames[0].stack[1].spilled.precise
        assert all(a is b for a, b in zip(ck.frames[0].regs, snap.frames[0].regs)) and ck.reg_precise(0, 2)
        check_frozen()
    finally:
        record_frozen(False)


@pytest.mark.kernel
def test_the_kernel_does_not_prune_there_either():
    from bpfpatch.kernel.loader import load_program

    prog = load_program(_precise_after_checkpoint(), "socket_filter", log_level=2)
    try:
        line = [ln for ln in prog.verifier_log.splitlines() if ln.startswith("processed ")][0]
        assert line.split()[1] == "32", line
        assert "\n14: safe" not in prog.verifier_log
    finally:
        prog.close()
