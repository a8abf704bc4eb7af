"""Sync callbacks run again until they converge, as the kernel verifies them.

After a callback's exit the kernel goes back to the helper call (prepare_func_exit), which pushes
the callback once more and goes on after the call with what the runs so far wrote into the caller's
stack; bpf_loop stops at its bound, the others when the state at the call is within one an
iteration earlier.  Our states match the log at every step and we process as many instructions.
"""

from __future__ import annotations

import pytest
from conftest import PROGS, compile_bpf

from analysis_kernel import check_object
from bpfpatch import Program
from bpfpatch.analysis.facts import RegType
from bpfpatch.analysis.verifier import analyze

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def obj(objdir):
    return compile_bpf(PROGS / "analysis" / "callbackloop.c", objdir)


def test_callback_writes_reach_the_caller(obj):
    results = check_object(str(obj))
    assert {r.name for r in results} == {"loop_sum", "each_sum"}
    for r in results:
        assert not r.kernel_error and not r.our_error, (r.kernel_error, r.our_error)
        assert r.cmp.types_agree, r.cmp.type_mismatches[:2]
        assert r.cmp.exact_match == r.cmp.steps, r.cmp.exact_mismatches[:2]
        assert r.processed == r.kernel_processed


def test_unchanged_caller_converges_at_once():
    # r1 = 3; r2 = &cb; r3 = r4 = 0; call bpf_loop; exit.   cb: r0 = 0; exit
    from bpfpatch.isa.build import call_helper, exit_insn, ld_func, mov64_imm

    p = Program.from_insns([mov64_imm(1, 3), ld_func(2, 5), mov64_imm(3, 0), mov64_imm(4, 0), call_helper("loop"),
                            exit_insn(), mov64_imm(0, 0), exit_insn()])
    a = analyze(p, "sched_cls")
    entries = a.aux[7].states
    # the callback changes nothing in the caller: back at the call, the state is within the one before
    # the first run (calls_callback, RANGE_WITHIN) and that visit is pruned, so the callback runs once
    assert len(entries) == 1
    assert all(len(s.frames) == 2 and s.regs[1].type is RegType.SCALAR for s in entries)
    assert a.aux[8].seen
