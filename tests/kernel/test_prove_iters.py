"""`bpfpatch.prove` on the open-coded numbers iterator (bpf_iter_num_new / next / destroy), modelled exactly as
kernel/bpf/bpf_iter.c runs it on the program's stack; its loops are unrolled like any other.

tests/progs/prove/iters.c (XDP: the kernel runs it) gets wrong rewrites, each a counterexample (the kernel confirms
those whose return value differs), and the passes' faithful rewrites, each proved; the selftests' iters_num.o is
proved.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from progtools import mutant, slot_insns as slots
from conftest import PROGS, compile_bpf
from bpfpatch.elf import read_object
from bpfpatch.errors import BpfPatchError
from bpfpatch.isa import build
from bpfpatch.isa.opcodes import AluOp, CallSrc, JmpOp
from bpfpatch.passes import PassContext, run_passes
from bpfpatch.program import Program
from bpfpatch.progtype import ProgType
from bpfpatch.prove import ProofVerdict, prove_equivalent
from bpfpatch.prove.corpus import elf_programs, pass_options
from bpfpatch.prove.replay import replay

pytestmark = pytest.mark.kernel

SELFTESTS = Path("/tmp/objects-corpus")


@pytest.fixture(scope="module")
def summing(tmp_path_factory) -> Program:
    obj = read_object(compile_bpf(PROGS / "prove" / "iters.c", tmp_path_factory.mktemp("prove_iters")))
    return obj.linked_program("xdp")


def kfunc_calls(p: Program) -> list[int]:
    return [s for s, x in slots(p).items() if x.code == build.call_helper(1).code and x.src == CallSrc.KFUNC]


def test_faithful_rewrites_of_an_iterator_loop_are_proved(summing):
    for name in ("blind", "zext", "dce", "div-guard"):
        q = run_passes(summing, [name], PassContext(seed=2, prog_type=ProgType.XDP))
        res = prove_equivalent(summing, q, ProgType.XDP, timeout=20)
        assert res.verdict is ProofVerdict.PROVED, (name, res)


def test_wrong_rewrites_of_an_iterator_loop_get_counterexamples(summing):
    p = summing
    at = slots(p)
    new, _next, _next2, destroy = kfunc_calls(p)
    start = new - 1
    assert at[start] == build.alu32_imm(AluOp.MOV, 2, 2)
    mask = next(s for s, x in at.items() if x == build.alu32_imm(AluOp.AND, 3, 7))
    step = next(s for s, x in at.items() if x == build.alu32_reg(AluOp.MUL, 6, 2))
    cases = {
        "the range starts at 3": {start: build.alu32_imm(AluOp.MOV, 2, 3)},
        "the bound masked to 3": {mask: build.alu32_imm(AluOp.AND, 3, 3)},
        "one number more": {mask + 1: build.alu32_imm(AluOp.ADD, 3, 3)},
        "i + x instead of i * x": {step: build.alu32_reg(AluOp.ADD, 6, 2)},
        "destroy dropped": {destroy: build.alu64_imm(AluOp.MOV, 0, 0)},
    }
    confirmed = 0
    for what, change in cases.items():
        q = mutant(p, change)
        res = prove_equivalent(p, q, ProgType.XDP, timeout=20)
        assert res.verdict is ProofVerdict.COUNTEREXAMPLE, (what, res)
        a, b = res.counterexample.model_retvals
        if a == b:
            continue  # only the call sequence differs (the iterator's arguments): a test run does not show that
        try:
            run = replay(p, q, res.counterexample, ProgType.XDP)
        except BpfPatchError as exc:  # pragma: no cover - a kernel that refuses kfuncs in XDP
            pytest.skip(f"the kernel does not run the iterator program: {exc}")
        if run.error:
            continue
        assert run.confirmed, (what, run)
        confirmed += 1
    print(f"confirmed by the kernel: {confirmed}")
    assert confirmed >= 1


def test_the_numbers_iterator_is_exact_at_its_edges():
    """new(start > end) and new(over BPF_MAX_LOOPS) give empty ranges; INT_MIN..INT_MIN + 2 runs twice (cur = start
    - 1 wraps): proved against the closed forms, and the closed forms with one more step are not."""
    from bpfpatch.btf.vmlinux import kernel_types

    kt = kernel_types()
    if kt is None or kt.func_id("bpf_iter_num_new") is None:
        pytest.skip("no kernel BTF naming the numbers iterator's kfuncs")
    ids = {n: kt.func_id(f"bpf_iter_num_{n}") for n in ("new", "next", "destroy")}

    def counting(start: int, end: int) -> Program:
        """r0 = the number of numbers the iterator gives for start..end."""
        return Program.from_insns([
            build.alu64_reg(AluOp.MOV, 1, 10), build.alu64_imm(AluOp.ADD, 1, -8),
            build.alu32_imm(AluOp.MOV, 2, start), build.alu32_imm(AluOp.MOV, 3, end),
            build.call_kfunc(ids["new"]), build.alu64_imm(AluOp.MOV, 6, 0),
            build.alu64_reg(AluOp.MOV, 1, 10), build.alu64_imm(AluOp.ADD, 1, -8),
            build.call_kfunc(ids["next"]),
            build.jmp_imm(JmpOp.JEQ, 0, 0, 2), build.alu64_imm(AluOp.ADD, 6, 1), build.ja(-6),
            build.alu64_reg(AluOp.MOV, 1, 10), build.alu64_imm(AluOp.ADD, 1, -8),
            build.call_kfunc(ids["destroy"]), build.alu64_reg(AluOp.MOV, 0, 6), build.exit_insn()])

    def closed(p: Program, n: int) -> Program:
        insns = list(p.insns)
        insns[-2] = build.alu64_imm(AluOp.MOV, 0, n)
        return Program.from_insns(insns)

    int_min = -(1 << 31)
    for start, end, n in ((5, 3, 0), (0, 3, 3), (int_min, int_min + 2, 2), (-(1 << 30), 1 << 30, 0)):
        p = counting(start, end)
        assert prove_equivalent(p, closed(p, n), ProgType.XDP, use_region=False).verdict is ProofVerdict.PROVED, (start, end)
        wrong = prove_equivalent(p, closed(p, n + 1), ProgType.XDP, use_region=False)
        assert wrong.verdict is ProofVerdict.COUNTEREXAMPLE, (start, end, wrong)


def test_the_selftests_numbers_iterators_are_proved():
    path = SELFTESTS / "iters_num.o"
    if not path.exists():
        pytest.skip(f"{path}: no selftest object (tests/objcorpus.py builds them)")
    programs = elf_programs(path)
    assert len(programs) >= 10
    for name, p, ptype in programs:
        for pname in ("blind", "zext"):
            q = run_passes(p, [pname], PassContext(seed=1, prog_type=ptype, options=pass_options(p, ptype)))
            res = prove_equivalent(p, q, ptype, timeout=20)
            assert res.verdict is ProofVerdict.PROVED, (name, pname, res)
