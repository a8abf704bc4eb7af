"""`bpfpatch.prove` on callbacks the kernel runs in a loop: bpf_loop and bpf_for_each_map_elem over an array map,
each call of the callback its subprogram on a frame of its own, as kernel/bpf/bpf_iter.c and arraymap.c call it,
and bpf_find_vma's callback, called at most once (kernel/bpf/task_iter.c).

tests/progs/prove/callbacks.c (XDP) gets wrong rewrites, in the callbacks and at the calls, each a counterexample,
and the passes' faithful rewrites, each proved: the kernel pass's inlined bpf_loop (the verifier's
``inline_bpf_loop``) against the helper's model is an independent check of that model.  A callback the model does
not run (timers, ...) leaves the proof undecided, whatever its code.
"""

from __future__ import annotations

import pytest

from progtools import mutant, slot_insns as slots
from conftest import PROGS, compile_bpf
from bpfpatch.elf import read_object
from bpfpatch.isa import build
from bpfpatch.isa.opcodes import AluOp, Size
from bpfpatch.passes import PassContext, run_passes
from bpfpatch.program import Program
from bpfpatch.progtype import ProgType
from bpfpatch.prove import ProofVerdict, prove_equivalent

pytestmark = pytest.mark.kernel

BPF_LOOP, FOR_EACH_MAP_ELEM, FIND_VMA, TIMER_SET_CALLBACK, GET_CURRENT_TASK_BTF = 181, 164, 180, 170, 158


@pytest.fixture(scope="module")
def looping(tmp_path_factory) -> Program:
    obj = read_object(compile_bpf(PROGS / "prove" / "callbacks.c", tmp_path_factory.mktemp("prove_callbacks")))
    return obj.linked_program("xdp")


def helper_call(p: Program, helper: int) -> int:
    return next(s for s, x in slots(p).items() if x == build.call_helper(helper))


def test_faithful_rewrites_of_callback_loops_are_proved(looping):
    for name in ("blind", "zext", "dce", "div-guard", "kernel"):
        q = run_passes(looping, [name], PassContext(seed=2, prog_type=ProgType.XDP))
        if name == "kernel":  # the kernel inlines this bpf_loop: a loop of pseudo calls instead of the helper
            assert not any(x == build.call_helper(BPF_LOOP) for x in q.insns)
        res = prove_equivalent(looping, q, ProgType.XDP, timeout=30,
                               rewritten_ctx="xlated" if name == "kernel" else "user")
        assert res.verdict is ProofVerdict.PROVED, (name, res)


@pytest.mark.slow
def test_wrong_rewrites_of_callback_loops_get_counterexamples(looping):
    p = looping
    at = slots(p)
    loop, each = helper_call(p, BPF_LOOP), helper_call(p, FOR_EACH_MAP_ELEM)
    funcs = [s for s, x in at.items() if x.code == build.ld_func(2, 0).code and x.src == 4]
    each_fn, loop_fn = funcs  # the elements' callback is given first
    assert at[loop - 5] == build.mov32_imm(1, 6) and at[loop - 1] == build.mov64_imm(4, 0)
    assert at[each - 1] == build.mov64_imm(4, 0)
    step = loop_fn + 1 + at[loop_fn].imm
    add = each_fn + 1 + at[each_fn].imm
    stop = next(s for s in at if s > step and at[s] == build.mov32_imm(0, 1))
    key3 = next(s for s in at if s > add and at[s] == build.alu32_imm(AluOp.MUL, 1, 3))
    bump = next(s for s in at if s > add and at[s] == build.alu64_imm(AluOp.ADD, 1, 1))
    cases = {
        "the step callback never stops": {stop: build.mov32_imm(0, 0)},
        "five loops": {loop - 5: build.mov32_imm(1, 5)},
        "bpf_loop given flags (-EINVAL, no call)": {loop - 1: build.mov64_imm(4, 1)},
        "the key read as 2 * key": {key3: build.alu32_imm(AluOp.MUL, 1, 2)},
        "each value bumped by 2 (the map differs)": {bump: build.alu64_imm(AluOp.ADD, 1, 2)},
        "bpf_loop's callback entered one instruction late": {loop_fn: build.ld_func(2, step - loop_fn)},
    }
    for what, change in cases.items():
        res = prove_equivalent(p, mutant(p, change), ProgType.XDP, timeout=30)
        assert res.verdict is ProofVerdict.COUNTEREXAMPLE, (what, res)
    # for_each given flags makes no lookups, the original four: the elements the original reached are compared
    # with the rewrite's by key at the exit (`map_value_equal`: the value regions are the original's only)
    res = prove_equivalent(p, mutant(p, {each - 1: build.mov64_imm(4, 1)}), ProgType.XDP, timeout=30)
    assert res.verdict is ProofVerdict.COUNTEREXAMPLE and "its key's element at the exit" in res.reason, res


def test_a_callback_the_model_does_not_run_is_never_proved():
    """bpf_timer_set_callback(timer, callback): the kernel runs it later, which the model does not follow; the
    callback changed (r0 = 1) is not proved."""
    def prog(ret: int) -> Program:
        return Program.from_insns([
            build.mov64_imm(1, 0), build.ld_func(2, 5), build.call_helper(TIMER_SET_CALLBACK), build.mov64_imm(0, 0),
            build.exit_insn(), build.mov64_imm(0, 0), build.mov64_imm(0, ret), build.exit_insn()])

    a, b = prog(0), prog(1)
    assert slots(a)[7] == build.mov64_imm(0, 0)  # the callback, at 1 + 5 + 1
    res = prove_equivalent(a, b, ProgType.TRACING, timeout=10)
    assert res.verdict is ProofVerdict.UNDECIDED and "170" in res.reason, res


def test_find_vma_runs_its_callback_once_when_the_environment_finds_one():
    """bpf_find_vma(task, addr, callback, ctx, flags): the callback (it stores 1 into the context the caller
    gives it, on the stack) runs when the environment's answer is 0; the caller returns what it stored.  A callback
    storing 2, or the call given flags, is a counterexample; the callback's own result (dropped) changed is
    proved."""
    def prog(store: int = 1, flags: int = 0, ret: int = 0) -> Program:
        return Program.from_insns([
            build.st_mem(Size.DW, 10, -8, 0),
            build.call_helper(GET_CURRENT_TASK_BTF), build.mov64_reg(1, 0), build.mov64_imm(2, 4096),
            build.ld_func(3, 7), build.mov64_reg(4, 10), build.alu64_imm(AluOp.ADD, 4, -8), build.mov64_imm(5, flags),
            build.call_helper(FIND_VMA), build.ldx_mem(Size.DW, 0, 10, -8), build.exit_insn(),
            build.st_mem(Size.DW, 3, 0, store), build.mov64_imm(0, ret), build.exit_insn()])

    a = prog()
    assert slots(a)[12] == build.st_mem(Size.DW, 3, 0, 1)  # the callback, at 4 + 7 + 1
    for what, b in (("stores 2", prog(store=2)), ("given flags", prog(flags=1))):
        res = prove_equivalent(a, b, ProgType.TRACING, timeout=20)
        assert res.verdict is ProofVerdict.COUNTEREXAMPLE, (what, res)
    res = prove_equivalent(a, prog(ret=1), ProgType.TRACING, timeout=20)
    assert res.verdict is ProofVerdict.PROVED, res


def test_the_loop_bound_is_exact_at_its_edges():
    """bpf_loop(n, callback: r0 = 0) returns n for n up to the unroll bound, -E2BIG over BPF_MAX_LOOPS;
    `r0 == n` is proved, `r0 == n + 1` is not."""
    def counting(n: int, expect: int) -> Program:
        return Program.from_insns([
            build.mov64_imm(1, n), build.ld_func(2, 7), build.mov64_imm(3, 0), build.mov64_imm(4, 0),
            build.call_helper(BPF_LOOP), build.mov64_imm(6, expect), build.alu64_reg(AluOp.SUB, 0, 6),
            build.exit_insn(), build.mov64_imm(0, 0), build.exit_insn()])  # the callback at 1 + 7 + 1

    zero = Program.from_insns([build.mov64_imm(0, 0), build.exit_insn()])
    for n, expect in ((0, 0), (3, 3), (8 * 1024 * 1024 + 1, -7)):
        assert prove_equivalent(counting(n, expect), zero, ProgType.XDP, timeout=10).verdict is ProofVerdict.PROVED, n
        assert prove_equivalent(counting(n, expect + 1), zero, ProgType.XDP,
                                timeout=10).verdict is ProofVerdict.COUNTEREXAMPLE, n


def test_bpf_throw_ends_the_program_with_the_exception_callbacks_result():
    """bpf_throw(cookie) in a program naming no exception callback (the linker's meta says so) ends it with the
    cookie, the kernel's default callback's result; what follows the call is not run.  A program naming its own
    callback, or one whose BTF does not tell, is undecided."""
    from bpfpatch.btf.vmlinux import kernel_types
    from bpfpatch.elf.link import EXCEPTION_CALLBACK

    kt = kernel_types()
    throw = kt.func_id("bpf_throw") if kt is not None else None
    if throw is None:
        pytest.skip("the running kernel's BTF (or its bpf_throw kfunc) is not readable")

    def prog(cookie: int, after: list, named: str | None = "") -> Program:
        p = Program.from_insns([build.mov64_imm(1, cookie), build.call_kfunc(throw)] + after)
        return p if named is None else Program(p.slots, meta={EXCEPTION_CALLBACK: named})

    a = prog(1, [build.mov32_imm(0, 0), build.exit_insn()])
    same = prog(1, [build.mov64_imm(0, 7), build.exit_insn()])
    assert prove_equivalent(a, same, ProgType.SCHED_CLS, timeout=10, use_region=False).verdict is ProofVerdict.PROVED
    other = prog(2, [build.mov32_imm(0, 0), build.exit_insn()])
    res = prove_equivalent(a, other, ProgType.SCHED_CLS, timeout=10, use_region=False)
    assert res.verdict is ProofVerdict.COUNTEREXAMPLE and res.counterexample.model_retvals == (1, 2), res
    for named, why in (("cb", "exception callback cb"), (None, "not known")):
        res = prove_equivalent(prog(1, a.insns[2:], named), prog(1, same.insns[2:], named), ProgType.SCHED_CLS,
                               timeout=10, use_region=False)
        assert res.verdict is ProofVerdict.UNDECIDED and why in res.reason, (named, res)
