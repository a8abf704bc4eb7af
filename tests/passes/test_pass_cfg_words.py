"""The path walk of `passes.cfg` reads instructions off their slot words: its step is held to the
`Insn`-level rule (`cfg.transfer`) over every opcode, and its branch decisions to the prover's
semantics of a conditional jump (`prove.model.jump_cond`, evaluated by z3 on the constants)."""

from __future__ import annotations

import z3
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfpatch import Program
from bpfpatch.isa import KIND, Insn, insn_of_words, insn_words
from bpfpatch.isa import build as b
from bpfpatch.isa.opcodes import JmpOp
from bpfpatch.passes.cfg import NREGS, analyze, transfer, transfer_words
from bpfpatch.patch import PatchList
from bpfpatch.prove.model import jump_cond

M64 = (1 << 64) - 1
EDGES = [0, 1, 2, 31, 32, 63, 64, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 32, (1 << 63) - 1, 1 << 63, M64]
values = st.one_of(st.sampled_from(EDGES), st.integers(0, M64))
registers = st.lists(st.one_of(st.none(), values), min_size=NREGS, max_size=NREGS)


@settings(max_examples=3000, deadline=None)
@given(code=st.integers(0, 255), dst=st.integers(0, NREGS - 1), src=st.integers(0, NREGS - 1), off=st.integers(-(1 << 15), (1 << 15) - 1),
       imm=st.one_of(st.sampled_from([0, 1, -1, 31, 32, 63, 64, 0xF1, 0x100, -(1 << 31), (1 << 31) - 1]),
                     st.integers(-(1 << 31), (1 << 31) - 1)),
       hi=st.integers(0, (1 << 32) - 1), regs=registers)
def test_the_step_on_words_is_the_rule_on_insns(code, dst, src, off, imm, hi, regs):
    w0, _ = insn_words(Insn(code, dst, src, off, imm))
    w1 = hi << 32
    insn = insn_of_words(w0, w1)  # (an ld_imm64 takes its upper half from the second slot)
    want, got = list(regs), list(regs)
    transfer(insn, want)
    transfer_words(int(KIND[code]), w0, hi, got)
    assert got == want, insn


CONDITIONAL = [op for op in JmpOp if op not in (JmpOp.JA, JmpOp.CALL, JmpOp.EXIT, JmpOp.JCOND)]


def _decision(jump: Insn, a: int, c: int) -> tuple[bool, bool]:
    """(target taken, fall-through taken) of `jump` on r1 = a, r2 = c, as the walk decides it."""
    prog = Program.from_insns([b.ld_imm64(1, a), b.ld_imm64(2, c), jump,
                               b.mov64_imm(0, 0), b.exit_insn(), b.mov64_imm(0, 1), b.exit_insn()])
    flow = analyze(PatchList(prog))
    return flow.target_live[2], flow.fallthrough_live[2]


@settings(max_examples=600, deadline=None)
@given(op=st.sampled_from(CONDITIONAL), wide=st.booleans(), reg=st.booleans(), a=values, c=values,
       imm=st.one_of(st.sampled_from([0, 1, -1, (1 << 31) - 1, -(1 << 31)]), st.integers(-(1 << 31), (1 << 31) - 1)))
def test_a_branch_on_constants_goes_where_its_semantics_say(op, wide, reg, a, c, imm):
    if reg:
        jump = (b.jmp_reg if wide else b.jmp32_reg)(op, 1, 2, 2)
    else:
        jump = (b.jmp_imm if wide else b.jmp32_imm)(op, 1, imm, 2)
    cond = jump_cond(jump, z3.BitVecVal(a, 64), z3.BitVecVal(c, 64) if reg else None)
    taken = z3.is_true(z3.simplify(cond))
    assert _decision(jump, a, c) == (taken, not taken), (jump, a, c)


def test_a_branch_on_an_unknown_register_goes_both_ways():
    prog = Program.from_insns([b.call_helper("get_prandom_u32"), b.jmp_imm(JmpOp.JGT, 0, 5, 2),
                               b.mov64_imm(0, 0), b.exit_insn(), b.mov64_imm(0, 1), b.exit_insn()])
    flow = analyze(PatchList(prog))
    assert (flow.target_live[1], flow.fallthrough_live[1]) == (True, True)
    assert all(flow.seen)
