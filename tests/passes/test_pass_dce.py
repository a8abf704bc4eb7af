"""dce: the kernel's dead-code rewrite (hard-wire, remove unseen, remove goto +0), checked
against hand-written expectations and the running kernel's xlated output."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bpfpatch import FuncInfo, Insn, LineInfo, Program
from bpfpatch.asm import assemble
from bpfpatch.isa import KIND_OF, Kind, decode_slots, slot_rows
from bpfpatch.isa.refs import Target, target_of
from bpfpatch.passes import PassContext, run_passes
from bpfpatch.passes import cfg
from bpfpatch.patch import PatchList
from bpfpatch.passes.cfg import analyze
from progtools import accepted_retvals, kernel_programs, kernel_retvals, programs


def I(*f) -> Insn:  # noqa: E743 - short rows read like the kernel's tables
    return Insn(*f)


EXIT = I(0x95)
PRANDOM = I(0x85, 0, 0, 0, 7)  # r0 = bpf_get_prandom_u32(): a value the verifier cannot know

# name -> (program, expected output).  Every program loads as a socket filter; the expected
# output is also checked against the kernel's xlated program below.
CASES: dict[str, tuple[list[Insn], list[Insn]]] = {
    # NOTES.md: the fall-through is dead -> goto <target> -> goto +0 -> removed.
    "notes": ([I(0xB7, 0, 0, 0, 1), I(0x15, 0, 0, 1, 1), I(0xB7, 0, 0, 0, 2), EXIT],
              [I(0xB7, 0, 0, 0, 1), EXIT]),
    # The target is dead: goto +0, removed; the fall-through stays.
    "target-dead": ([I(0xB7, 0, 0, 0, 1), I(0x15, 0, 0, 2, 2), I(0xB7, 0, 0, 0, 2), EXIT, I(0xB7, 0, 0, 0, 3), EXIT],
                    [I(0xB7, 0, 0, 0, 1), I(0xB7, 0, 0, 0, 2), EXIT]),
    # Both successors seen: untouched.
    "both-seen": ([PRANDOM, I(0x15, 0, 0, 1, 1), I(0xB7, 0, 0, 0, 2), EXIT],
                  [PRANDOM, I(0x15, 0, 0, 1, 1), I(0xB7, 0, 0, 0, 2), EXIT]),
    # A goto over dead code: after the removal it is a goto +0 and goes too.
    "ja-over-dead": ([I(0xB7, 0, 0, 0, 0), I(0xB7, 1, 0, 0, 3), I(0x07, 0, 0, 0, 1), I(0x55, 1, 0, 1, 3),
                      I(0x05, 0, 0, 1, 0), I(0xB7, 0, 0, 0, 9), EXIT],
                     [I(0xB7, 0, 0, 0, 0), I(0xB7, 1, 0, 0, 3), I(0x07, 0, 0, 0, 1), EXIT]),
    # Hard-wired to a far target: the goto stays, with its offset shrunk by the removed run.
    "goto-far": ([I(0xB7, 6, 0, 0, 5), PRANDOM, I(0x15, 0, 0, 2, 0), I(0x15, 6, 0, 3, 5), I(0xB7, 0, 0, 0, 1),
                  I(0xB7, 0, 0, 0, 2), EXIT, I(0x07, 0, 0, 0, 3), EXIT],
                 [I(0xB7, 6, 0, 0, 5), PRANDOM, I(0x15, 0, 0, 1, 0), I(0x05, 0, 0, 2, 0),
                  I(0xB7, 0, 0, 0, 2), EXIT, I(0x07, 0, 0, 0, 3), EXIT]),
    # ALU on known values, JSET, signed compares, JMP32 on the low word of an ld_imm64.
    "alu-chain": ([I(0xB7, 3, 0, 0, 6), I(0x27, 3, 0, 0, 7), I(0x57, 3, 0, 0, 0x3C), I(0x77, 3, 0, 0, 2),
                   I(0x45, 3, 0, 1, 2), I(0xB7, 0, 0, 0, 1), I(0xB7, 0, 0, 0, 2), EXIT],
                  [I(0xB7, 3, 0, 0, 6), I(0x27, 3, 0, 0, 7), I(0x57, 3, 0, 0, 0x3C), I(0x77, 3, 0, 0, 2),
                   I(0xB7, 0, 0, 0, 2), EXIT]),
    "signed": ([I(0xB7, 0, 0, 0, 0), I(0xB7, 4, 0, 0, -3), I(0xC5, 4, 0, 1, 0), I(0xB7, 0, 0, 0, 1),
                I(0x65, 4, 0, 1, -4), I(0xB7, 0, 0, 0, 2), EXIT],
               [I(0xB7, 0, 0, 0, 0), I(0xB7, 4, 0, 0, -3), EXIT]),
    "jmp32-on-ld_imm64": ([I(0x18, 3, 0, 0, 0x100000001), I(0x16, 3, 0, 1, 1), I(0xB7, 0, 0, 0, 5),
                           I(0xB7, 0, 0, 0, 6), EXIT],
                          [I(0x18, 3, 0, 0, 0x100000001), I(0xB7, 0, 0, 0, 6), EXIT]),
    "ld_imm64-64bit": ([I(0x18, 3, 0, 0, 0x100000001), I(0x15, 3, 0, 2, 1), I(0xB7, 0, 0, 0, 5), EXIT,
                        I(0xB7, 0, 0, 0, 6), EXIT],
                       [I(0x18, 3, 0, 0, 0x100000001), I(0xB7, 0, 0, 0, 5), EXIT]),
    "reg-compare": ([I(0xB7, 0, 0, 0, 0), I(0xB7, 1, 0, 0, 4), I(0xB7, 2, 0, 0, 4), I(0x1D, 1, 2, 1, 0),
                     I(0xB7, 0, 0, 0, 5), EXIT],
                    [I(0xB7, 0, 0, 0, 0), I(0xB7, 1, 0, 0, 4), I(0xB7, 2, 0, 0, 4), EXIT]),
    # A register shift by a known amount is folded; by the width or more the verifier forgets the value.
    "shift-known": ([I(0xB7, 0, 0, 0, 0), I(0xB7, 1, 0, 0, 1), I(0xB7, 2, 0, 0, 3), I(0x6F, 1, 2), I(0x15, 1, 0, 1, 8),
                     I(0xB7, 0, 0, 0, 5), EXIT],
                    [I(0xB7, 0, 0, 0, 0), I(0xB7, 1, 0, 0, 1), I(0xB7, 2, 0, 0, 3), I(0x6F, 1, 2), EXIT]),
    "shift-by-width": ([I(0xB7, 0, 0, 0, 0), I(0xB7, 1, 0, 0, 1), I(0xB7, 2, 0, 0, 64), I(0x6F, 1, 2),
                        I(0x15, 1, 0, 1, 1), I(0xB7, 0, 0, 0, 5), EXIT],
                       [I(0xB7, 0, 0, 0, 0), I(0xB7, 1, 0, 0, 1), I(0xB7, 2, 0, 0, 64), I(0x6F, 1, 2),
                        I(0x15, 1, 0, 1, 1), I(0xB7, 0, 0, 0, 5), EXIT]),
    # A bounded loop over constants: followed to its end like the verifier; the check after it is decided.
    "bounded-loop": ([I(0xB7, 0, 0, 0, 0), I(0xB7, 1, 0, 0, 0), I(0x07, 1, 0, 0, 1), I(0x07, 0, 0, 0, 2),
                      I(0xA5, 1, 0, -3, 4), I(0x15, 1, 0, 1, 9), EXIT, I(0xB7, 0, 0, 0, 1), EXIT],
                     [I(0xB7, 0, 0, 0, 0), I(0xB7, 1, 0, 0, 0), I(0x07, 1, 0, 0, 1), I(0x07, 0, 0, 0, 2),
                      I(0xA5, 1, 0, -3, 4), EXIT]),
    # A backward jump on an unknown value: nothing decided.
    "loop-unknown": ([PRANDOM, I(0x57, 0, 0, 0, 7), I(0x07, 0, 0, 0, 1), I(0xA5, 0, 0, -2, 10), EXIT],
                     [PRANDOM, I(0x57, 0, 0, 0, 7), I(0x07, 0, 0, 0, 1), I(0xA5, 0, 0, -2, 10), EXIT]),
    # A helper call forgets r0-r5 but keeps r6-r9.
    "helper-clobbers": ([I(0xB7, 0, 0, 0, 1), I(0xB7, 6, 0, 0, 1), PRANDOM, I(0x15, 6, 0, 1, 1), I(0xB7, 0, 0, 0, 2),
                         I(0x15, 0, 0, 1, 1), I(0xB7, 0, 0, 0, 3), EXIT],
                        [I(0xB7, 0, 0, 0, 1), I(0xB7, 6, 0, 0, 1), PRANDOM, I(0x15, 0, 0, 1, 1), I(0xB7, 0, 0, 0, 3),
                         EXIT]),
    # Calls are followed with the caller's r1-r5; the callee's r0 comes back.
    "subprog-call": ([I(0xB7, 1, 0, 0, 4), I(0x85, 0, 1, 0, 4), I(0x15, 0, 0, 1, 5), EXIT,
                      I(0xB7, 0, 0, 0, 9), EXIT,
                      I(0xBF, 0, 1), I(0x15, 1, 0, 1, 4), I(0xB7, 0, 0, 0, 5), EXIT],
                     [I(0xB7, 1, 0, 0, 4), I(0x85, 0, 1, 0, 1), EXIT,
                      I(0xBF, 0, 1), EXIT]),
    # The same callee from two sites with different arguments: its branch is seen both ways.
    "subprog-two-callers": ([I(0xB7, 1, 0, 0, 4), I(0x85, 0, 1, 0, 3), I(0xB7, 1, 0, 0, 5), I(0x85, 0, 1, 0, 1), EXIT,
                             I(0xB7, 0, 0, 0, 0), I(0x15, 1, 0, 1, 4), I(0xB7, 0, 0, 0, 5), EXIT],
                            [I(0xB7, 1, 0, 0, 4), I(0x85, 0, 1, 0, 3), I(0xB7, 1, 0, 0, 5), I(0x85, 0, 1, 0, 1), EXIT,
                             I(0xB7, 0, 0, 0, 0), I(0x15, 1, 0, 1, 4), I(0xB7, 0, 0, 0, 5), EXIT]),
    # A subprogram only dead code calls goes entirely.
    "dead-subprog": ([I(0xB7, 0, 0, 0, 1), I(0x15, 0, 0, 1, 2), EXIT, I(0x85, 0, 1, 0, 1), EXIT,
                      I(0xB7, 0, 0, 0, 3), EXIT],
                     [I(0xB7, 0, 0, 0, 1), EXIT]),
    # ... also when the dead caller sits in a later dead subprogram.
    "dead-subprog-chain": ([I(0xB7, 0, 0, 0, 1), I(0x15, 0, 0, 1, 2), EXIT, I(0x85, 0, 1, 0, 3), EXIT,
                            I(0xB7, 0, 0, 0, 3), EXIT,
                            I(0x85, 0, 1, 0, -3), EXIT],
                           [I(0xB7, 0, 0, 0, 1), EXIT]),
    # Dead code that jumps back into live code; a user's own goto +0 is removed too.
    "dead-jumps-into-live": ([I(0xB7, 0, 0, 0, 2), I(0x05, 0, 0, 0, 0), I(0x15, 0, 0, 2, 2), I(0xB7, 0, 0, 0, 4),
                              I(0x05, 0, 0, 1, 0), I(0x07, 0, 0, 0, 1), EXIT],
                             [I(0xB7, 0, 0, 0, 2), I(0x07, 0, 0, 0, 1), EXIT]),
    # A dead branch inside the body of a live one: its offset shrinks.
    "nested": ([PRANDOM, I(0xB7, 2, 0, 0, 1), I(0x15, 0, 0, 4, 0), I(0x15, 2, 0, 1, 1), I(0xB7, 0, 0, 0, 7),
                I(0x07, 0, 0, 0, 1), I(0x05, 0, 0, 1, 0), I(0xB7, 0, 0, 0, 3), EXIT],
               [PRANDOM, I(0xB7, 2, 0, 0, 1), I(0x15, 0, 0, 2, 0), I(0x07, 0, 0, 0, 1), I(0x05, 0, 0, 1, 0),
                I(0xB7, 0, 0, 0, 3), EXIT]),
}


def _rows(insns: list[Insn]) -> list:
    return slot_rows(Program.from_insns(insns).slots)


@pytest.mark.parametrize("name", list(CASES))
def test_table(name):
    insns, want = CASES[name]
    assert slot_rows(run_passes(Program.from_insns(insns), ["dce"]).slots) == _rows(want)


def _xlated(prog: Program) -> list:
    from bpfpatch.kernel import load_program

    with load_program(prog) as p:
        return slot_rows(decode_slots(p.xlated()))


def _normalize(rows: list, kernel: bool = False) -> list:
    """Fields the kernel rewrites for reasons of its own: a helper call's imm becomes an address;
    in a JITed program's xlated dump a pseudo call keeps its relative offset in off and the
    callee's subprogram number in imm.  Pseudo calls compare by their offset."""
    out = []
    for c, d, s, o, i in rows:
        if c == 0x85 and s == 0:
            i = 0
        if c == 0x85 and s == 1:
            o, i = 0, (o if kernel else i)
        out.append((c, d, s, o, i))
    return out


@pytest.mark.kernel
@pytest.mark.parametrize("name", list(CASES))
def test_table_equals_kernel_xlated(name):
    insns, want = CASES[name]
    assert _normalize(_xlated(Program.from_insns(insns)), kernel=True) == _normalize(_rows(want))


def test_removed_subprogram_metadata_follows():
    """func_info / line_info / subprogram starts of a removed subprogram go with it."""
    insns = CASES["dead-subprog-chain"][0]
    prog = Program.from_insns(insns, func_info=[FuncInfo(0, 1), FuncInfo(5, 2), FuncInfo(7, 3)],
                              line_info=[LineInfo(0, 1, 1, 1 << 10), LineInfo(5, 1, 2, 2 << 10), LineInfo(7, 1, 3, 3 << 10)],
                              subprogs=[0, 5, 7])
    out = run_passes(prog, ["dce"])
    assert out.subprogs == [0]
    assert out.func_info == [FuncInfo(0, 1)]
    assert out.line_info == [LineInfo(0, 1, 1, 1 << 10)]


def test_callback_entry_is_kept():
    """A subprogram only a pseudo-func ld_imm64 names (a bpf_loop callback) is an entry."""
    insns = [I(0xB7, 1, 0, 0, 3), I(0x18, 2, 4, 0, 6), I(0xB7, 3, 0, 0, 0), I(0xB7, 4, 0, 0, 0),
             I(0x85, 0, 0, 0, 181), I(0xB7, 0, 0, 0, 0), EXIT,
             I(0xB7, 0, 0, 0, 0), EXIT]
    prog = Program.from_insns(insns)
    assert run_passes(prog, ["dce"]) == prog
    # A callback that decides a branch on a constant is still rewritten inside.
    insns[7:7] = [I(0xB7, 2, 0, 0, 1), I(0x15, 2, 0, 1, 1), I(0xB7, 0, 0, 0, 1)]
    prog = Program.from_insns(insns)
    want = Program.from_insns(insns[:7] + [I(0xB7, 2, 0, 0, 1), I(0xB7, 0, 0, 0, 0), EXIT])
    assert run_passes(prog, ["dce"]).to_bytes() == want.to_bytes()


def test_seen_marks():
    insns, _ = CASES["target-dead"]
    flow = analyze(PatchList(Program.from_insns(insns)))
    assert flow.seen == [True, True, True, True, False, False]
    assert flow.target_live[1] is False and flow.fallthrough_live[1] is True


def test_analysis_budget_falls_back_to_merging():
    """A loop over a constant too long to follow path by path: merged states, nothing wrongly dead."""
    insns = [I(0xB7, 1, 0, 0, 0), I(0x07, 1, 0, 0, 1), I(0xA5, 1, 0, -2, 1_000_000), I(0x15, 1, 0, 1, 7),
             I(0xB7, 0, 0, 0, 1), I(0xB7, 0, 0, 0, 2), EXIT]
    pl = PatchList(Program.from_insns(insns))
    flow = analyze(pl, budget=1000)
    assert all(flow.seen)


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------
# The kernel-checked case of test_dce_removes_nops_in_one_forward_pass_like_the_kernel: dce leaves a nop.
_LEAVES_A_NOP = Program.from_insns([
    Insn(0x85, 0, 0, 0, 7), Insn(0xB7, 1, 0, 0, 0), Insn(0x15, 0, 0, 2, 3), Insn(0x15, 1, 0, 2, 0),
    Insn(0xB7, 0, 0, 0, 1), Insn(0x05, 0, 0, 0, 0), Insn(0xB7, 0, 0, 0, 0), Insn(0x95),
])


@settings(max_examples=100, deadline=None)
@given(programs())
@example(_LEAVES_A_NOP)
def test_idempotent_unless_it_left_a_nop_and_keeps_metadata_consistent(prog):
    once = run_passes(prog, ["dce"])
    twice = run_passes(once, ["dce"])
    for out in (once, twice):
        assert len(out.subprogs) == len(out.func_info or out.subprogs)
    if not any(_jumps_to_next(insn) for insn in once.insns):
        assert twice == once
        return
    # Like the kernel's one forward nop pass, removing a later `goto +0` can turn an earlier jump
    # into one (test_dce_removes_nops_in_one_forward_pass_like_the_kernel): each further run
    # removes at least one, until none is left and dce is a fixed point.
    out = once
    while any(_jumps_to_next(insn) for insn in out.insns):
        again = run_passes(out, ["dce"])
        assert len(again.insns) < len(out.insns)
        out = again
    assert run_passes(out, ["dce"]) == out


def _jumps_to_next(insn) -> bool:
    return KIND_OF[insn.code] in (Kind.JA, Kind.MAY_GOTO) and insn.off == 0


def _kernel_nop_pass(rows: list) -> list:
    """The kernel's `opt_remove_nops` on xlated rows: one forward pass removing each `ja +0`, the
    jumps across it shortened (`bpf_adj_branches`).  A pseudo call in a JITed dump keeps its
    offset in ``off``; every other target field is the isa table's (`target_of`)."""
    rows = list(rows)
    i = 0
    while i < len(rows):
        if rows[i] != (0x05, 0, 0, 0, 0):
            i += 1
            continue
        del rows[i]
        for j, (c, d, s, o, m) in enumerate(rows):
            field = Target.OFF if (c == 0x85 and s == 1) else target_of(c, s)
            if field == Target.NONE or (c == 0x85 and s == 1 and o == 0):
                continue
            old_j = j + (j >= i)
            rel = o if field == Target.OFF else m
            t = old_j + 1 + rel
            rel = (t - (t > i)) - j - 1
            rows[j] = (c, d, s, rel, m) if field == Target.OFF else (c, d, s, o, rel)
    return rows


# Found by hypothesis: `if r0 == r0 goto +3` is hard-wired to `ja +3`, the dead code after it goes and
# leaves `ja +0`, which the kernel's one forward nop pass has passed already: the kernel's xlated program
# keeps it, and so does ours, but loaded again that `ja +0` is a nop of the input and goes.
_LEFT_NOP = """
r0 = 0
r1 = 0
r1 s/= r0
r0 = 1 ll
if r0 == r1 goto +4
r0 = 0 ll
if r0 == r0 goto +3
if r0 == 0 goto +0
if r0 != 0 goto +1
if r0 == 0 goto +0
exit
"""


@pytest.mark.kernel
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kernel_programs())
@example(Program.from_insns(assemble(_LEFT_NOP)))
def test_keeps_acceptance_and_retval(prog):
    expected = accepted_retvals(prog)
    out = run_passes(prog, ["dce"], PassContext())
    assert len(out.insns) <= len(prog.insns)
    assert kernel_retvals(out) == expected
    # We remove only what the kernel removes, the way it removes it: the kernel's own rewrite of
    # our output is its rewrite of the input (its range tracking may decide more than our constants),
    # but for the `ja +0` its one forward nop pass leaves, which goes when our output is loaded.
    ours, kernels = _normalize(_xlated(out), kernel=True), _normalize(_xlated(prog), kernel=True)
    assert ours == kernels or ((0x05, 0, 0, 0, 0) in kernels and ours == _kernel_nop_pass(kernels))


def _without_conditions(prog: Program) -> Program:
    """The program with every conditional jump turned into `may_goto` (both edges stay)
    and every call into a subprogram turned into a helper call (no return to model)."""
    import numpy as np

    from bpfpatch.isa import KIND, Kind, insn_starts

    slots = prog.slots.copy()
    kinds = KIND[slots["code"]]
    cond = insn_starts(slots) & ((kinds == Kind.JCOND_K) | (kinds == Kind.JCOND_X))
    slots["code"][cond] = 0xE5
    slots["regs"][cond] = 0
    slots["imm"][cond] = 0
    call = insn_starts(slots) & (slots["code"] == 0x85) & ((slots["regs"] >> 4) == 1)
    slots["regs"][call] = 0
    slots["imm"][call] = 1
    func = insn_starts(slots) & (slots["code"] == 0x18) & ((slots["regs"] >> 4) == 4)
    slots["regs"][func] &= 0x0F
    assert not np.isin(KIND[slots["code"][insn_starts(slots)]], (Kind.JCOND_K, Kind.JCOND_X)).any()
    return Program(slots, func_info=prog.func_info, line_info=prog.line_info, aux=prog.aux, subprogs=prog.subprogs)


def test_a_call_keeps_the_path_analysis():
    """A callee that never returns leaves the code after its call dead: the path analysis decides."""
    from bpfpatch.passes import cfg

    prog = Program.from_insns([Insn(0x85, 0, 1, 0, 1), Insn(0x95), Insn(0x05, 0, 0, -1, 0)], validate=False)
    assert cfg.needs_path_analysis(PatchList(prog))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_vectorized_reachability_equals_the_analysis(prog):
    """Without conditional jumps dce takes the vectorized path: same seen set, same output."""
    from bpfpatch.passes import cfg, dce

    prog = _without_conditions(prog)
    pl = PatchList(prog)
    # Some patching first, so the list has inserted and deleted nodes.
    nodes = list(pl)
    if len(nodes) > 2:
        pl.prepend(nodes[1], [Insn(0x05, 0, 0, 0, 0)])
        pl.delete(nodes[-2]) if nodes[-2].insn.code not in (0x85,) else None
    ids, seen = cfg.reachable(pl)
    flow = analyze(pl)
    assert [n._id for n in flow.nodes] == ids.tolist()
    assert flow.seen == seen.tolist()
    fast = run_passes(prog, ["dce"])
    original = dce.needs_path_analysis
    try:
        dce.needs_path_analysis = lambda pl, w0=None: True  # force the general path
        slow = run_passes(prog, ["dce"])
    finally:
        dce.needs_path_analysis = original
    assert slot_rows(fast.slots) == slot_rows(slow.slots)
    assert (fast.subprogs, fast.func_info, fast.line_info, fast.aux) == (slow.subprogs, slow.func_info, slow.line_info, slow.aux)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 3000), st.integers(0xFFFF_FFF0, 0x1_0000_0010), st.integers(0, (1 << 70))),
                max_size=400))
def test_the_path_walks_key_set_is_a_set_across_its_slot_widths(keys):
    # four bytes a slot while every key fits 32 bits, eight after (rehashed at the first wider key),
    # keys of 2**63 and more in a side set: every width holds exactly the keys added
    from bpfpatch.passes.cfg import KeySet

    ks, ref = KeySet(), set()
    for k in keys:
        assert ks.add_new(k, 1 << 30) == (k not in ref)
        ref.add(k)
    assert len(ks) == len(ref)
    assert all(not ks.add_new(k, 1 << 30) for k in ref)
    # capped at the walk's key limit: the table stops at four fifths full instead of doubling past it
    capped, cap = KeySet(len(ref)), len(ref)
    for k in keys:
        capped.add_new(k, cap)
    assert len(capped) == cap and all(not capped.add_new(k, cap) for k in ref)
    if cap and max(ref) < 1 << 63:
        with pytest.raises(cfg.TooManyPaths):
            capped.add_new(next(k for k in range(1 << 40, 1 << 41) if k not in ref), cap)


_VALUES = st.one_of(st.none(), st.integers(0, 3), st.integers(0, (1 << 64) - 1))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(*[_VALUES] * cfg.NREGS) | st.tuples(st.integers(0, cfg.NREGS - 1), _VALUES), max_size=300))
def test_the_path_walks_state_table_numbers_states_as_a_dict_does(steps):
    # a state one register off its base is kept as (base, register, value): equal states get one
    # number however they were reached, numbered in order of first appearance, read back equal
    table, ref, cur = cfg.StateTable(), {}, cfg.UNKNOWN
    for step in steps:
        if len(step) == 2:  # a one-register change of the last state read (the walk's common case)
            regs = list(cur)
            regs[step[0]] = step[1]
            step = tuple(regs)
        sid = table.find(step)
        assert sid == ref.setdefault(step, len(ref))
        cur = table.get(sid)
        assert cur == step
    assert len(table) == len(ref)
    assert all(table.get(sid) == state for state, sid in ref.items())
    if ref:
        with pytest.raises(cfg.TooManyPaths):
            table.find((7,) * cfg.NREGS if (7,) * cfg.NREGS not in ref else (8,) * cfg.NREGS, len(ref))


def test_the_path_walks_state_table_widens_each_column_once_when_needed():
    # bases past 256, values past 32 bits and numbers past a two-byte table slot: each column widens
    # once and every state keeps its number (50,000 states: the table is past 65,536 slots)
    table, sids = cfg.StateTable(), {}
    for n in range(50_000):
        regs = [n % 7] * cfg.NREGS
        if n % 150 == 0:
            regs = [n] * cfg.NREGS  # a new base
        else:
            regs[n % 5] = n * (1 << 30)  # one register off the last base, past 32 bits from n = 4 on
        state = tuple(regs)
        sids[state] = table.find(state)
    assert table._base.typecode == "i" and table._val.typecode == "Q" and table._tab.typecode == "i"
    assert sorted(sids.values()) == list(range(len(sids)))
    assert all(table.find(state) == sid and table.get(sid) == state for state, sid in sids.items())
