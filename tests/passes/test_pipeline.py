"""Passes on one patch list, linearized once == the same passes one by one, linearized between."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bpfpatch import Insn, Program
from bpfpatch.errors import PatchError, RelocationError, VerifierError
from bpfpatch.passes import PassContext, available_passes, get_pass, run_passes
from progtools import kernel_programs, programs

MINE = ["div-guard", "dce"]
OTHERS = [n for n in ("zext", "blind") if n in available_passes()]
ORDERS = [list(p) for p in itertools.permutations(MINE)] + [
    list(p) for p in itertools.permutations(MINE + OTHERS) if OTHERS
][:12]


def _one_by_one(prog: Program, names: list[str], seed: int, aux_reg) -> Program:
    ctx = PassContext(seed=seed, aux_reg=aux_reg)  # one RNG across the passes, as in the pipeline
    for name in names:
        prog = run_passes(prog, [name], ctx)
    return prog


def _same(a: Program, b: Program) -> None:
    assert a.to_bytes() == b.to_bytes()
    assert a.subprogs == b.subprogs
    assert a.func_info == b.func_info
    assert a.line_info == b.line_info
    assert a.aux == b.aux


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kernel_programs(), st.sampled_from(ORDERS), st.integers(0, 5), st.sampled_from([11, "auto"]))
def test_one_list_equals_pass_by_pass(prog, names, seed, aux_reg):
    try:
        together = run_passes(prog, names, PassContext(seed=seed, aux_reg=aux_reg))
    except PatchError:
        assume(False)  # auto found no free register
    _same(together, _one_by_one(prog, names, seed, aux_reg))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(max_body=8), st.sampled_from([MINE, MINE[::-1]]))
def test_one_list_equals_pass_by_pass_with_subprograms_and_metadata(prog, names):
    """Subprograms, calls, callbacks, func/line info and aux data (progtools.programs)."""
    # Put divisions in: every `rX += 1` becomes `rX s/= r(X+1)`.
    insns = [Insn(0x3F, i.dst, (i.dst + 1) % 10, 1, 0) if i.code == 0x07 else i for i in prog.insns]
    prog = Program.from_insns(insns, func_info=prog.func_info, line_info=prog.line_info, aux=prog.aux,
                              subprogs=prog.subprogs)
    _same(run_passes(prog, names), _one_by_one(prog, names, 0, 11))


def _free_r9(prog: Program) -> Program:
    """kernel_programs sets every register first; fold r9 into r8 so "auto" has one to give."""
    insns = [i._replace(dst=8 if i.dst == 9 else i.dst, src=8 if i.src == 9 else i.src) for i in prog.insns]
    return Program.from_insns(insns)


def _retval(prog: Program) -> int:
    from bpfpatch.kernel import load_program

    with load_program(prog) as p:
        return p.test_run(bytes(range(64))).retval


@pytest.mark.kernel
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kernel_programs(), st.sampled_from(ORDERS))
def test_pipeline_keeps_behaviour(prog, names):
    prog = _free_r9(prog)
    try:
        expected = _retval(prog)
    except VerifierError:
        assume(False)
    try:
        out = run_passes(prog, names, PassContext(seed=4, aux_reg="auto"))
    except PatchError:
        assume(False)
    assert _retval(out) == expected


def test_unknown_pass_is_one_clear_error():
    prog = Program.from_insns([Insn(0xB7, 0, 0, 0, 1), Insn(0x95)])
    with pytest.raises(PatchError, match=r"unknown pass 'nope' \(known: .*dce.*div-guard"):
        run_passes(prog, ["dce", "nope"])


def test_registry_names():
    for name in MINE:
        assert get_pass(name).name == name
    assert set(MINE) <= set(available_passes())


def test_dce_then_div_guard_on_long_jumps():
    """Guards push a jump past 16 bits: an error without relaxation, a gotol with it."""
    body = [Insn(0x3F, 0, 1)] * 9000
    insns = [Insn(0x85, 0, 0, 0, 7), Insn(0xB7, 1, 0, 0, 3), Insn(0x15, 0, 0, len(body), 0), *body,
             Insn(0x95)]
    prog = Program.from_insns(insns)
    with pytest.raises(RelocationError, match="16 bits"):
        run_passes(prog, ["dce", "div-guard"])
    out = run_passes(prog, ["dce", "div-guard"], relax_long_jumps=True)
    assert len(out.insns) > 4 * len(body)
