"""div-guard: the kernel's divide/modulo guards, exactly (tables, the running kernel, bulk form)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from progtools import accepted_retvals, kernel_programs, kernel_retvals, programs

from bpfpatch import Insn, PatchList, Program
from bpfpatch.errors import PatchError
from bpfpatch.isa import decode_slots, slot_rows
from bpfpatch.passes import PassContext, run_passes
from bpfpatch.passes.div_guard import div_guard_bulk, guard

# ---------------------------------------------------------------------------------------------
# Table: every variant, written out by hand from NOTES.md's general form, with rd=3, rs=5 so a
# swapped register field shows.  Rows are (code, dst, src, off, imm).
# ---------------------------------------------------------------------------------------------
RD, RS = 3, 5
JA1 = (0x05, 0, 0, 1, 0)
GUARD_TABLE = {
    # unsigned, register
    "r/=r": ((0x3F, RD, RS, 0, 0), [(0x55, RS, 0, 2, 0), (0xAC, RD, RD, 0, 0), JA1, (0x3F, RD, RS, 0, 0)]),
    "w/=w": ((0x3C, RD, RS, 0, 0), [(0x56, RS, 0, 2, 0), (0xAC, RD, RD, 0, 0), JA1, (0x3C, RD, RS, 0, 0)]),
    "r%=r": ((0x9F, RD, RS, 0, 0), [(0x15, RS, 0, 1, 0), (0x9F, RD, RS, 0, 0)]),
    "w%=w": ((0x9C, RD, RS, 0, 0), [(0x16, RS, 0, 2, 0), (0x9C, RD, RS, 0, 0), JA1, (0xBC, RD, RD, 0, 0)]),
    # signed, register (AX = r11)
    "r s/= r": ((0x3F, RD, RS, 1, 0), [(0xBF, 11, RS, 0, 0), (0x07, 11, 0, 0, 1), (0x25, 11, 0, 4, 1),
                                       (0x15, 11, 0, 1, 0), (0xB7, RD, 0, 0, 0), (0x87, RD, 0, 0, 0), JA1,
                                       (0x3F, RD, RS, 1, 0)]),
    "w s/= w": ((0x3C, RD, RS, 1, 0), [(0xBF, 11, RS, 0, 0), (0x04, 11, 0, 0, 1), (0x26, 11, 0, 4, 1),
                                       (0x16, 11, 0, 1, 0), (0xB4, RD, 0, 0, 0), (0x84, RD, 0, 0, 0), JA1,
                                       (0x3C, RD, RS, 1, 0)]),
    "r s%= r": ((0x9F, RD, RS, 1, 0), [(0xBF, 11, RS, 0, 0), (0x07, 11, 0, 0, 1), (0x25, 11, 0, 3, 1),
                                       (0x15, 11, 0, 3, 1), (0xB4, RD, 0, 0, 0), JA1, (0x9F, RD, RS, 1, 0)]),
    "w s%= w": ((0x9C, RD, RS, 1, 0), [(0xBF, 11, RS, 0, 0), (0x04, 11, 0, 0, 1), (0x26, 11, 0, 3, 1),
                                       (0x16, 11, 0, 4, 1), (0xB4, RD, 0, 0, 0), JA1, (0x9C, RD, RS, 1, 0),
                                       JA1, (0xBC, RD, RD, 0, 0)]),
    # signed, immediate -1
    "r s/= -1": ((0x37, RD, 0, 1, -1), [(0x87, RD, 0, 0, 0)]),
    "w s/= -1": ((0x34, RD, 0, 1, -1), [(0x84, RD, 0, 0, 0)]),
    "r s%= -1": ((0x97, RD, 0, 1, -1), [(0xB4, RD, 0, 0, 0)]),
    "w s%= -1": ((0x94, RD, 0, 1, -1), [(0xB4, RD, 0, 0, 0)]),
}
# Left alone: immediates (other than the signed -1), unsigned -1, and every non-division.
UNTOUCHED = [(0x37, RD, 0, 0, 7), (0x97, RD, 0, 0, -1), (0x34, RD, 0, 1, 7), (0x94, RD, 0, 1, -2),
             (0x37, RD, 0, 0, -1), (0x2F, RD, RS, 0, 0), (0x07, RD, 0, 0, -1), (0xBF, RD, RS, 8, 0)]


def _prog(*rows) -> Program:
    return Program.from_insns([Insn(0xB7, RD, 0, 0, 7), Insn(0xB7, RS, 0, 0, 2), *(Insn(*r) for r in rows), Insn(0x95)])


@pytest.mark.parametrize("name", list(GUARD_TABLE))
def test_guard_table(name):
    insn, want = GUARD_TABLE[name]
    out = run_passes(_prog(insn), ["div-guard"])
    assert slot_rows(out.slots) == [(0xB7, RD, 0, 0, 7), (0xB7, RS, 0, 0, 2), *want, (0x95, 0, 0, 0, 0)]
    assert [tuple(i) for i in guard(Insn(*insn))] == want


@pytest.mark.parametrize("row", UNTOUCHED)
def test_untouched(row):
    prog = _prog(row)
    assert guard(Insn(*row)) is None
    assert run_passes(prog, ["div-guard"]).to_bytes() == prog.to_bytes()


def test_division_keeps_its_aux_and_jumps_land_on_the_guard():
    # if r5 == 0 goto <division>; the jump must land on the guard's first instruction.
    insns = [Insn(0xB7, RD, 0, 0, 7), Insn(0xB7, RS, 0, 0, 2), Insn(0x15, RS, 0, 1, 0), Insn(0xB7, 0, 0, 0, 1),
             Insn(0x3F, RD, RS, 1, 0), Insn(0xBF, 0, RD), Insn(0x95)]
    prog = Program.from_insns(insns, aux=[f"a{i}" for i in range(7)])
    out = run_passes(prog, ["div-guard"])
    rows = slot_rows(out.slots)
    assert rows[2] == (0x15, RS, 0, 1, 0)  # lands on AX = r5, the first of the eight
    assert rows[4][:3] == (0xBF, 11, RS)
    assert rows[11] == (0x3F, RD, RS, 1, 0)
    assert out.aux[11] == "a4" and out.aux[4:11] == [None] * 7  # kernel: aux moves to the last insn
    assert out.aux[12] == "a5"


def test_aux_reg_choice():
    prog = _prog((0x3F, RD, RS, 1, 0), (0x9C, RD, RS, 1, 0))
    out = run_passes(prog, ["div-guard"], PassContext(aux_reg=9))
    rows = slot_rows(out.slots)
    assert rows[2] == (0xBF, 9, RS, 0, 0) and 11 not in {r[1] for r in rows} | {r[2] for r in rows}
    auto = run_passes(prog, ["div-guard"], PassContext(aux_reg="auto"))
    assert slot_rows(auto.slots) == rows  # r9 is the first free register auto tries
    with pytest.raises(PatchError, match="uses r5"):
        run_passes(prog, ["div-guard"], PassContext(aux_reg=RS))
    with pytest.raises(PatchError, match="0-9, 11"):
        run_passes(prog, ["div-guard"], PassContext(aux_reg=10))
    every = Program.from_insns([Insn(0xB7, r, 0, 0, 2) for r in range(10)] + [Insn(0x3F, 0, 1, 1, 0), Insn(0x95)])
    with pytest.raises(PatchError, match="no free register"):
        run_passes(every, ["div-guard"], PassContext(aux_reg="auto"))
    with pytest.raises(PatchError, match="no free register"):
        div_guard_bulk(every, "auto")
    # Unsigned guards and the -1 immediates need no scratch register: auto never fails on them.
    plain = Program.from_insns([Insn(0xB7, r, 0, 0, 2) for r in range(10)] + [Insn(0x3F, 0, 1), Insn(0x37, 2, 0, 1, -1), Insn(0x95)])
    assert run_passes(plain, ["div-guard"], PassContext(aux_reg="auto")) == run_passes(plain, ["div-guard"])


# ---------------------------------------------------------------------------------------------
# Bulk form == node form on random programs full of divisions (subprograms, jumps, metadata).
# ---------------------------------------------------------------------------------------------
DIV_CODES = [0x3F, 0x3C, 0x9F, 0x9C, 0x37, 0x34, 0x97, 0x94]


@st.composite
def division_programs(draw):
    """progtools programs with most one-slot, non-jump instructions swapped for divisions."""
    prog = draw(programs(max_body=16))
    insns = prog.insns
    out = []
    for insn in insns:
        if insn.code in (0xB7, 0x07) and draw(st.integers(0, 3)):
            code = draw(st.sampled_from(DIV_CODES))
            signed = draw(st.booleans())
            imm = 0 if code & 0x08 else draw(st.sampled_from([-1, -1, 3, 7]))
            insn = Insn(code, draw(st.integers(0, 9)), draw(st.integers(0, 9)) if code & 0x08 else 0, int(signed), imm)
        out.append(insn)
    return Program.from_insns(out, func_info=prog.func_info, line_info=prog.line_info, aux=prog.aux,
                              subprogs=prog.subprogs)


@settings(max_examples=300, deadline=None)
@given(division_programs(), st.sampled_from([11, "auto"]))
def test_bulk_equals_pass(prog, aux_reg):
    try:
        node = run_passes(prog, ["div-guard"], PassContext(aux_reg=aux_reg))
    except PatchError:
        with pytest.raises(PatchError):
            div_guard_bulk(prog, aux_reg)
        return
    bulk = div_guard_bulk(prog, aux_reg)
    assert slot_rows(bulk.slots) == slot_rows(node.slots)
    assert bulk.subprogs == node.subprogs
    assert bulk.func_info == node.func_info
    assert bulk.line_info == node.line_info
    assert bulk.aux == node.aux


def test_bulk_without_sites_is_a_copy():
    prog = _prog((0x07, RD, 0, 0, 1))
    out = div_guard_bulk(prog)
    assert out == prog and out is not prog


# ---------------------------------------------------------------------------------------------
# The running kernel: our output == its xlated program, instruction for instruction.
# ---------------------------------------------------------------------------------------------
def _xlated(prog: Program) -> list:
    from bpfpatch.kernel import load_program

    with load_program(prog) as p:
        return slot_rows(decode_slots(p.xlated()))


def _mask_helper_imms(rows: list) -> list:
    """The kernel rewrites helper call imms to addresses; everything else must match."""
    return [(c, d, s, o, 0 if c == 0x85 and s == 0 else i) for c, d, s, o, i in rows]


def _kernel_variants():
    for cls in (0x07, 0x04):
        for op in (0x30, 0x90):
            for signed in (0, 1):
                for v in (2, 0, -1, 7):
                    for rd, rs in ((0, 1), (4, 2), (0, 0)):
                        yield (f"{cls:#x}{op:#x}{'s' if signed else 'u'}-r{rd}r{rs}={v}",
                               [Insn(0xB7, 0, 0, 0, 7), Insn(0xB7, rd, 0, 0, 9), Insn(0xB7, rs, 0, 0, v),
                                Insn(cls | op | 0x08, rd, rs, signed, 0), Insn(0xBF, 0, rd), Insn(0x95)])
                for imm in (-1, 3):
                    yield (f"{cls:#x}{op:#x}{'s' if signed else 'u'}-imm{imm}",
                           [Insn(0xB7, 0, 0, 0, 7), Insn(cls | op, 0, 0, signed, imm), Insn(0x95)])


KERNEL_VARIANTS = list(_kernel_variants())


@pytest.mark.kernel
@pytest.mark.parametrize("insns", [v[1] for v in KERNEL_VARIANTS], ids=[v[0] for v in KERNEL_VARIANTS])
def test_equals_kernel_xlated(insns):
    prog = Program.from_insns(insns)
    assert slot_rows(run_passes(prog, ["div-guard"]).slots) == _xlated(prog)
    assert slot_rows(div_guard_bulk(prog).slots) == _xlated(prog)


def _divisions_and_jumps(seed: int, n: int = 24) -> Program:
    """Random divisions of r6 by r7/r8/r9 (one of them random), with forward jumps across and
    onto them.  Every branch tests a fresh bpf_get_prandom_u32 value, so the verifier learns
    nothing that would let it prune a path (which would add its dead-code rewrite to the diff)."""
    import random

    rnd = random.Random(seed)
    head = [Insn(0x85, 0, 0, 0, 7), Insn(0xBF, 8, 0), Insn(0xB7, 6, 0, 0, 100), Insn(0xB7, 7, 0, 0, 3),
            Insn(0xB7, 9, 0, 0, -5)]
    items: list[tuple[list[Insn], int | None]] = []
    for i in range(n):
        c = rnd.randrange(4)
        if c <= 1:
            code = rnd.choice([0x3F, 0x3C, 0x9F, 0x9C])
            items.append(([Insn(code, 6, rnd.choice([7, 8, 9]), rnd.randrange(2), 0)], None))
        elif c == 2:
            items.append(([Insn(rnd.choice([0x37, 0x97, 0x34, 0x94]), 6, 0, 1, -1)], None))
        else:
            jump = Insn(rnd.choice([0x15, 0x55, 0x25, 0x16]), 0, 0, 0, rnd.randrange(4))
            items.append(([Insn(0x85, 0, 0, 0, 7), jump], rnd.randrange(i + 1, n + 1)))
    items.append(([Insn(0xBF, 0, 6), Insn(0x95)], None))
    start = [len(head)]
    for body, _ in items:
        start.append(start[-1] + len(body))
    insns = list(head)
    for k, (body, t) in enumerate(items):
        if t is not None:
            body = body[:-1] + [body[-1]._replace(off=start[t] - (start[k] + len(body) - 1) - 1)]
        insns += body
    return Program.from_insns(insns)


@pytest.mark.kernel
@pytest.mark.parametrize("seed", range(12))
def test_many_divisions_and_jumps_across_them_equal_kernel_xlated(seed):
    prog = _divisions_and_jumps(seed)
    want = _mask_helper_imms(_xlated(prog))
    assert _mask_helper_imms(slot_rows(run_passes(prog, ["div-guard"]).slots)) == want
    assert _mask_helper_imms(slot_rows(div_guard_bulk(prog).slots)) == want


def _free_r9(prog: Program) -> Program:
    """kernel_programs sets every register first; fold r9 into r8 so "auto" has one to give."""
    insns = [i._replace(dst=8 if i.dst == 9 else i.dst, src=8 if i.src == 9 else i.src) for i in prog.insns]
    return Program.from_insns(insns)


@pytest.mark.kernel
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kernel_programs())
def test_keeps_acceptance_and_retval(prog):
    # With the default AX (r11) a signed register guard names a register userspace cannot load;
    # those programs are covered with a program register below.
    assume(not _has_signed_register_division(prog))
    expected = accepted_retvals(prog)
    assert kernel_retvals(run_passes(prog, ["div-guard"])) == expected
    assert kernel_retvals(div_guard_bulk(prog)) == expected


def _has_signed_register_division(prog: Program) -> bool:
    return any(i.code in (0x3F, 0x3C, 0x9F, 0x9C) and i.off == 1 for i in prog.insns)


@pytest.mark.kernel
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kernel_programs())
def test_keeps_acceptance_and_retval_with_a_program_register(prog):
    prog = _free_r9(prog)
    expected = accepted_retvals(prog)
    try:
        out = run_passes(prog, ["div-guard"], PassContext(aux_reg="auto"))
    except PatchError:
        assume(False)  # every register in use: nothing to compare
    assert kernel_retvals(out) == expected
    assert kernel_retvals(div_guard_bulk(prog, "auto")) == expected


def test_pass_is_registered_and_one_list_matches_bulk():
    pl = PatchList(_prog((0x3F, RD, RS, 0, 0)))
    from bpfpatch.passes import get_pass

    p = get_pass("div-guard")
    p.run(pl, PassContext())
    assert pl.linearize() == div_guard_bulk(_prog((0x3F, RD, RS, 0, 0)))


def _edge_programs():
    """Dividends at the signed minimum, divisors 0 and -1: where the guards decide the result."""
    for cls in (0x07, 0x04):
        for op in (0x30, 0x90):
            for signed in (0, 1):
                for dividend in (-(1 << 63), -(1 << 31), 7, -7):
                    for divisor in (0, -1, 3):
                        yield (f"{cls:#x}{op:#x}{'s' if signed else 'u'}-{dividend}/{divisor}",
                               [Insn(0x18, 3, 0, 0, dividend), Insn(0xB7, 4, 0, 0, divisor),
                                Insn(cls | op | 0x08, 3, 4, signed, 0), Insn(0xBF, 0, 3), Insn(0x77, 3, 0, 0, 32),
                                Insn(0xAF, 0, 3), Insn(0x95)])
                    if signed:
                        yield (f"{cls:#x}{op:#x}s-{dividend}/imm-1",
                               [Insn(0x18, 3, 0, 0, dividend), Insn(cls | op, 3, 0, 1, -1), Insn(0xBF, 0, 3),
                                Insn(0x77, 3, 0, 0, 32), Insn(0xAF, 0, 3), Insn(0x95)])


EDGES = list(_edge_programs())


@pytest.mark.kernel
@pytest.mark.parametrize("insns", [e[1] for e in EDGES], ids=[e[0] for e in EDGES])
def test_guards_compute_what_the_kernel_computes(insns):
    """Loaded with a program register for AX, our guarded program returns what the kernel's own
    guards return for the original (r0 = low ^ high word of the result)."""
    prog = Program.from_insns(insns)
    assert kernel_retvals(run_passes(prog, ["div-guard"], PassContext(aux_reg="auto"))) == kernel_retvals(prog)
    assert kernel_retvals(div_guard_bulk(prog, 9)) == kernel_retvals(prog)
