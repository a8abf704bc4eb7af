"""blind where every register is live and the frame is moved by a register: the spill slot goes below the
depth the verifier computes (the kernel's subprog_info[].stack_depth), where the syntactic rule gives up."""

from __future__ import annotations

import pytest

from bpfpatch import PatchError, Program
from bpfpatch.elf import read_object
from bpfpatch.elf.rewrite import rewrite_object
from bpfpatch.isa.build import (
    Size, add64_imm, add64_reg, and64_imm, exit_insn, ldx_mem, mov64_imm, mov64_reg, rsh64_imm, stx_mem, xor64_reg,
)
from bpfpatch.kernel.analysis import for_object
from bpfpatch.passes import PassContext, run_passes
from conftest import PROGS, compile_bpf

SRC = PROGS / "passes/blind_varstack.c"


def _moved_frame(base: int) -> Program:
    """*(u64 *)(r10 + base + (len & 8)) = r4 (frame depth -base); r0-r9 live across `r1 += base` (instruction 11) and `r3 += 0x1234`."""
    body = [ldx_mem(Size.W, 2, 1, 0), and64_imm(2, 8)]  # r2 = skb->len & 8: a variable offset, 0 or 8
    body += [mov64_imm(r, 3 * r + 1) for r in (0, 3, 4, 5, 6, 7, 8, 9)]
    body += [mov64_reg(1, 10), add64_imm(1, base), add64_reg(1, 2), stx_mem(Size.DW, 1, 4, 0)]
    body += [mov64_reg(1, 2), add64_imm(3, 0x1234)]  # the site: every register is live across it
    for r in (1, 2, 3, 4, 5, 6, 7, 8, 9):
        body += [add64_reg(0, r), rsh64_imm(r, 32), xor64_reg(0, r)]
    return Program.from_insns(body + [exit_insn()])


def _spill_offsets(prog: Program) -> set[int]:
    return {x.off for x in prog.insns if x.code == stx_mem(Size.DW, 10, 0, 0).code and x.dst == 10}


def test_a_frame_moved_by_a_register_spills_below_the_verifiers_depth():
    out = run_passes(_moved_frame(-64), ["blind"], PassContext(seed=3, aux_reg="auto", prog_type="socket_filter"))
    assert _spill_offsets(out) == {-72}  # the verifier's depth 64 (-64 + [0, 8] -> lowest byte 64 down) + 8
    assert 0x1234 not in {x.imm for x in out.insns}


def test_without_a_program_type_the_refusal_says_why():
    with pytest.raises(PatchError, match=r"instruction 11: .*no program type to verify it as"):
        run_passes(_moved_frame(-64), ["blind"], PassContext(seed=3, aux_reg="auto"))


def test_the_512_byte_limit_is_still_refused_by_instruction():
    with pytest.raises(PatchError, match=r"instruction 11: every register is live and the stack is full \(512 of 512"):
        run_passes(_moved_frame(-512), ["blind"], PassContext(seed=3, aux_reg="auto", prog_type="socket_filter"))


@pytest.mark.kernel
def test_a_moved_frame_blinded_loads_and_returns_the_same():
    from bpfpatch.kernel import load_program

    prog = _moved_frame(-64)
    out = run_passes(prog, ["blind"], PassContext(seed=3, aux_reg="auto", prog_type="socket_filter"))
    with load_program(prog, "socket_filter") as a, load_program(out, "socket_filter") as b:
        for n in (14, 64, 72):
            assert a.test_run(bytes(n)).retval == b.test_run(bytes(n)).retval


@pytest.mark.kernel
@pytest.mark.parametrize("clang", ["clang", "clang-19"])
def test_an_object_whose_subprogram_indexes_a_stack_array_is_blinded_and_loads(clang, tmp_path):
    from objcorpus import loads

    obj = compile_bpf(SRC, tmp_path, clang=clang)
    data = obj.read_bytes()
    with pytest.raises(PatchError, match="stack use is not understood"):  # .text alone: no program type
        rewrite_object(data, None, ["blind"])
    ctx = for_object(PassContext(seed=5, aux_reg="auto"), read_object(data), ["blind"])  # as `bpfpatch patch` does
    out = rewrite_object(data, None, ["blind"], ctx=ctx)
    assert loads(data, "varstack")[0]
    ok, why = loads(out, "varstack+blind")
    assert ok, why
    text = read_object(out).programs[".text"]
    orig = read_object(data).programs[".text"]
    deepest = min(_spill_offsets(orig))  # the frame's deepest slot (below the array a[k & 7] indexes)
    assert _spill_offsets(text) - _spill_offsets(orig) == {deepest - 8}


def test_a_function_no_call_in_its_section_reaches_gets_its_own_depth():
    # .text as other sections call it: a small function at 0, the moved frame at 2; no call joins them here,
    # yet the verifier keeps two frames (pping's .text: 885 and 951).  The spill goes below the second's
    # depth (64), not the first's (0: r10 - 8 would overwrite the second's own stack).
    second = _moved_frame(-64)
    prog = Program.from_insns([mov64_imm(0, 0), exit_insn(), *second.insns], subprogs=[0, 2])
    depths = {0: 0, 2: 64}
    ctx = PassContext(seed=3, aux_reg="auto")
    ctx.options["blind"] = {"stack_depth": lambda program, slot: depths.get(slot)}
    out = run_passes(prog, ["blind"], ctx)
    assert _spill_offsets(out) == {-72}
