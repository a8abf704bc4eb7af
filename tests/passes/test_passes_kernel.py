"""The passes against the running kernel: exact xlated output, unchanged behaviour.

div-guard and dce must produce exactly the kernel's xlated instructions on
programs where the kernel performs only that rewrite; on random programs the
kernel accepts, every pass and the whole pipeline keep acceptance and the
BPF_PROG_TEST_RUN result.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from bpfpatch import Insn, Program
from bpfpatch.isa import decode_slots, slot_rows
from bpfpatch.kernel import load_program
from bpfpatch.passes import PassContext, run_passes
from progtools import accepted_retvals, kernel_programs, kernel_retvals

pytestmark = pytest.mark.kernel


def _xlated(prog: Program) -> list:
    with load_program(prog) as p:
        return slot_rows(decode_slots(p.xlated()))


def _div_variants():
    for cls in (0x07, 0x04):
        for op in (0x30, 0x90):
            for signed in (0, 1):
                for rs in (2, 0, -1):
                    yield f"{cls:#x}|{op:#x}{'s' if signed else ''}/r1={rs}", [
                        Insn(0xB7, 0, 0, 0, 7), Insn(0xB7, 1, 0, 0, rs), Insn(cls | op | 0x08, 0, 1, signed, 0), Insn(0x95)]
                if signed:
                    yield f"{cls:#x}|{op:#x}s/-1", [Insn(0xB7, 0, 0, 0, 7), Insn(cls | op, 0, 0, 1, -1), Insn(0x95)]


DIV_CASES = list(_div_variants())


@pytest.mark.parametrize("insns", [c[1] for c in DIV_CASES], ids=[c[0] for c in DIV_CASES])
def test_div_guard_equals_kernel_xlated(insns):
    prog = Program.from_insns(insns)
    assert slot_rows(run_passes(prog, ["div-guard"]).slots) == _xlated(prog)


def _mask_helper_imms(rows: list) -> list:
    """The kernel rewrites helper call imms to addresses; everything else must match."""
    return [(c, d, s, o, 0 if c == 0x85 and s == 0 else i) for c, d, s, o, i in rows]


def test_div_guard_many_divisions_and_jumps_across_them():
    # r2 comes from bpf_get_prandom_u32 so the verifier cannot prune any path.
    insns = [Insn(0x85, 0, 0, 0, 7), Insn(0xBF, 2, 0), Insn(0xB7, 0, 0, 0, 100), Insn(0xB7, 1, 0, 0, 3)]
    insns += [Insn(0x15, 2, 0, 5, 0)]  # if r2 == 0 goto past three divisions
    insns += [Insn(0x3F, 0, 1), Insn(0x9C, 0, 1), Insn(0x3F, 0, 2, 1, 0), Insn(0x07, 0, 0, 0, 1), Insn(0x3C, 0, 2)]
    insns += [Insn(0x3F, 0, 1), Insn(0x95)]
    prog = Program.from_insns(insns)
    assert _mask_helper_imms(slot_rows(run_passes(prog, ["div-guard"]).slots)) == _mask_helper_imms(_xlated(prog))


DCE_CASES = {
    "notes": [Insn(0xB7, 0, 0, 0, 1), Insn(0x15, 0, 0, 1, 1), Insn(0xB7, 0, 0, 0, 2), Insn(0x95)],
    "target-unseen": [Insn(0xB7, 0, 0, 0, 1), Insn(0x15, 0, 0, 1, 2), Insn(0xB7, 0, 0, 0, 2), Insn(0x95)],
    "ja-over-dead": [Insn(0xB7, 0, 0, 0, 0), Insn(0xB7, 1, 0, 0, 3), Insn(0x07, 0, 0, 0, 1), Insn(0x55, 1, 0, 1, 3),
                     Insn(0x05, 0, 0, 1, 0), Insn(0xB7, 0, 0, 0, 9), Insn(0x95)],
    "bounded-loop": [Insn(0xB7, 0, 0, 0, 0), Insn(0xB7, 1, 0, 0, 0), Insn(0x07, 1, 0, 0, 1), Insn(0x07, 0, 0, 0, 2),
                     Insn(0xA5, 1, 0, -3, 4), Insn(0x15, 1, 0, 1, 9), Insn(0x95), Insn(0xB7, 0, 0, 0, 1), Insn(0x95)],
    "jmp32-on-ld_imm64": [Insn(0x18, 3, 0, 0, 0x100000001), Insn(0x16, 3, 0, 1, 1), Insn(0xB7, 0, 0, 0, 5),
                          Insn(0xB7, 0, 0, 0, 6), Insn(0x95)],
    "subprog-call": [Insn(0xB7, 1, 0, 0, 4), Insn(0x85, 0, 1, 0, 4), Insn(0x15, 0, 0, 1, 5), Insn(0x95),
                     Insn(0xB7, 0, 0, 0, 9), Insn(0x95),
                     Insn(0xBF, 0, 1), Insn(0x15, 1, 0, 1, 4), Insn(0xB7, 0, 0, 0, 5), Insn(0x95)],
}


def _mask_call_off(rows: list) -> list:
    """In xlated form the kernel stores the callee's subprogram number in a pseudo call's off."""
    return [(c, d, s, 0 if c == 0x85 and s == 1 else o, i) for c, d, s, o, i in rows]


@pytest.mark.parametrize("name", list(DCE_CASES))
def test_dce_equals_kernel_xlated(name):
    prog = Program.from_insns(DCE_CASES[name])
    assert slot_rows(run_passes(prog, ["dce"]).slots) == _mask_call_off(_xlated(prog))


def test_dce_removes_nops_in_one_forward_pass_like_the_kernel():
    """Removing `goto +0` at 5 turns the hard-wired jump at 3 into one; the kernel's single
    forward pass (opt_remove_nops) keeps it, and so does dce: a second run removes it."""
    prog = Program.from_insns([
        Insn(0x85, 0, 0, 0, 7),  # r0 = bpf_get_prandom_u32(): unknown
        Insn(0xB7, 1, 0, 0, 0),
        Insn(0x15, 0, 0, 2, 3),  # if r0 == 3 goto 5
        Insn(0x15, 1, 0, 2, 0),  # if r1 == 0 goto 6: always, so 4 is dead
        Insn(0xB7, 0, 0, 0, 1),
        Insn(0x05, 0, 0, 0, 0),  # goto +0
        Insn(0xB7, 0, 0, 0, 0),
        Insn(0x95),
    ])
    once = run_passes(prog, ["dce"])
    ours, kernel = slot_rows(once.slots), _xlated(prog)
    assert ours[1:] == kernel[1:] and ours[0][:4] == kernel[0][:4]  # the helper's imm is an address in xlated
    assert (0x05, 0, 0, 0, 0) in ours
    assert len(run_passes(once, ["dce"]).slots) == len(once.slots) - 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kernel_programs())
def test_passes_keep_behaviour(prog):
    expected = accepted_retvals(prog)
    ctx = PassContext(seed=3, aux_reg="auto")
    for passes in (["div-guard"], ["dce"], ["dce", "div-guard"]):
        try:
            out = run_passes(prog, passes, ctx)
        except Exception as exc:  # "auto" may find no free register: then nothing to compare
            if "no free register" in str(exc):
                continue
            raise
        assert kernel_retvals(out) == expected, passes


def test_pipeline_on_one_list_equals_pass_by_pass():
    prog = Program.from_insns(DCE_CASES["bounded-loop"][:-1] + [Insn(0x3F, 0, 1), Insn(0x95)])
    together = run_passes(prog, ["dce", "div-guard"])
    one = run_passes(run_passes(prog, ["dce"]), ["div-guard"])
    assert together.to_bytes() == one.to_bytes()
