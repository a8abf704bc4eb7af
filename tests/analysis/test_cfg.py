"""analysis/cfg.py: blocks, edges, dominators, liveness and stack against simple references."""

from __future__ import annotations

import glob

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfpatch import PatchList, Program
from bpfpatch.analysis.cfg import FlowGraph, uses_defs
from bpfpatch.isa import Insn, Size
from bpfpatch.isa.opcodes import InsnClass, JmpOp, Source
from bpfpatch.isa import build as b

# r0 = 0; if r1 == 0 goto L; r0 = 1; L: r2 = r10; r2 += -16; *(u64 *)(r2 + 0) = r0; exit
DIAMOND = [
    b.mov64_imm(0, 0), b.jeq_imm(1, 0, 1), b.mov64_imm(0, 1),
    b.mov64_reg(2, 10), b.add64_imm(2, -16), b.stx_mem(Size.DW, 2, 0, 0), b.exit_insn(),
]


def _graph(insns) -> FlowGraph:
    return FlowGraph(PatchList(Program.from_insns(insns)))


def test_blocks_edges_and_dominators_of_a_diamond():
    g = _graph(DIAMOND)
    assert [[g.index[n] for n in blk.nodes] for blk in g.blocks] == [[0, 1], [2], [3, 4, 5, 6]]
    assert g.edges == [(0, 2), (0, 1), (1, 2)]
    assert g.blocks[2].preds == [0, 1]
    assert g.dominators(0) == {0: 0, 1: 0, 2: 0}
    assert g.dominates(0, 2) and not g.dominates(1, 2)
    assert g.stack_depth(0) == 16 and g.free_stack_slots(0, 2) == [-24, -32]
    n = g.nodes
    assert g.live_before(n[0]) == {1, 10}                   # r1 read by the jump, r10 by the copy
    assert g.live_before(n[3]) == {0, 10}
    assert g.free_registers(n[2], 3) == [9, 8, 7]
    assert 0 not in g.free_registers(n[3], 10) and 10 not in g.free_registers(n[0], 11)


def test_subprograms_and_call_graph():
    prog = [b.mov64_imm(1, 1), b.call_subprog(2), b.exit_insn(), b.exit_insn(),
            b.mov64_reg(0, 1), b.call_subprog(1), b.exit_insn(), b.mov64_imm(0, 2), b.exit_insn()]
    # subprogram 1 starts at index 4 (call at 1 -> 1+2+1), subprogram 2 at 7 (call at 5 -> 5+1+1)
    prog[1] = b.call_subprog(2)
    g = _graph(prog)
    assert g.subprog_starts == [0, 4, 7]
    assert g.call_graph == {0: {1}, 1: {2}, 2: set()}
    assert g.subprog_of(g.nodes[5]) == 1 and g.subprog_of(g.nodes[8]) == 2
    # the call reads r1-r5: r1 is live before the call, r0 is dead (the call writes it)
    assert 1 in g.live_before(g.nodes[1]) and 0 not in g.live_before(g.nodes[1])


def _reference_liveness(insns, g: FlowGraph) -> list[int]:
    """Per-instruction fixed point over instruction successors (no blocks)."""
    n = len(insns)
    succ = []
    for i, insn in enumerate(insns):
        s = []
        blk = g.blocks[g.block_of[i]]
        if g.nodes[i] == blk.last:
            s = [g.index[g.blocks[x].first] for x in blk.succs]
        else:
            s = [i + 1]
        succ.append(s)
    live = [0] * n
    changed = True
    while changed:
        changed = False
        for i in reversed(range(n)):
            u, d = uses_defs(insns[i])
            out = 0
            for j in succ[i]:
                out |= live[j]
            new = u | (out & ~d)
            if new != live[i]:
                live[i], changed = new, True
    return live


@st.composite
def programs(draw):
    n = draw(st.integers(3, 30))
    out = []
    for i in range(n - 1):
        k = draw(st.integers(0, 5))
        r, s = draw(st.integers(0, 9)), draw(st.integers(0, 9))
        room = n - 2 - i  # forward jumps stay inside the program, before the final exit
        if k == 0 and room > 0:
            out.append(b.jgt_reg(r, s, draw(st.integers(0, room))))
        elif k == 1 and room > 0:
            out.append(b.ja(draw(st.integers(0, room))))
        elif k == 2:
            out.append(b.add64_reg(r, s))
        elif k == 3:
            out.append(b.mov64_imm(r, 1))
        elif k == 4:
            out.append(b.ldx_mem(Size.W, r, s, 0))
        else:
            out.append(b.call_helper(5))
    out.append(b.exit_insn())
    return out


@settings(max_examples=150, deadline=None)
@given(programs())
def test_liveness_matches_a_per_instruction_reference(insns):
    g = _graph(insns)
    ref = _reference_liveness(insns, g)
    for i, node in enumerate(g.nodes):
        assert g.live_before(node) == frozenset(r for r in range(11) if ref[i] >> r & 1), i
    for blk in g.blocks:  # every block of one subprogram is dominated by the entry
        idom = g.dominators(blk.subprog)
        if blk.index in idom:
            assert g.dominates(g.subprog_blocks(blk.subprog)[0].index, blk.index)


@pytest.mark.parametrize("path", sorted(glob.glob("/usr/lib/x86_64-linux-gnu/bpf/xdpfilt_*.o"))[:3] or ["none"])
def test_third_party_objects_have_consistent_graphs(path):
    if path == "none":
        pytest.skip("xdp-tools objects are not installed")
    from bpfpatch.loader import read_program

    g = FlowGraph(PatchList(read_program(path, section="xdp")))
    assert sum(len(blk.nodes) for blk in g.blocks) == len(g.nodes)
    for x, y in g.edges:
        assert x in g.blocks[y].preds
    assert len(g.dominators(0)) > 1 and 0 < g.stack_depth(0) <= 512


def test_blocks_carry_the_verification_layers_seen():
    from bpfpatch.analysis.verifier import analyze, attach

    prog = Program.from_insns([b.mov64_imm(0, 1), b.jeq_imm(0, 1, 1), b.mov64_imm(0, 2), b.exit_insn()])
    pl = PatchList(prog)
    assert all(blk.seen is None for blk in FlowGraph(pl).blocks)   # no facts yet
    attach(pl, analyze(prog, "socket_filter"))
    g = FlowGraph(pl)
    assert [blk.seen for blk in g.blocks] == [True, False, True]    # `r0 = 2` no path reaches


def test_an_indirect_jump_ends_its_block_and_does_not_fall_through():
    # r1 = 0; gotox r1; r0 = 0; exit: the instruction after gotox starts a block no edge reaches
    gotox = Insn(InsnClass.JMP | JmpOp.JA | Source.X, 1, 0, 0, 0)
    g = _graph([b.mov64_imm(1, 0), gotox, b.mov64_imm(0, 0), b.exit_insn()])
    assert [[g.index[n] for n in blk.nodes] for blk in g.blocks] == [[0, 1], [2, 3]]
    assert g.edges == []
