"""analysis/liveness.py: the one liveness against a textbook fixed point, and every user agrees with it.

The reference sweeps backwards over all instructions until nothing changes,
with successors taken from the nodes themselves (``node.target``, which lands
past deleted nodes); the liveness under test is the linear worklist.  Its users
(the flow graph, blind's live-out, zext's 64-bit view, coverage's per-slot
masks, the verifier's and the prover's per-slot liveness) must give the same masks on the same programs.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bpfpatch import PatchList, Program
from bpfpatch.analysis.cfg import FlowGraph
from bpfpatch.analysis.liveness import list_liveness, slot_edges, slot_liveness, uses_defs, wide_uses_defs
from bpfpatch.isa import KIND_OF, Kind
from bpfpatch.isa import build as b
from bpfpatch.isa.opcodes import AluOp, JmpOp, Size
from bpfpatch.kernel.cover import live_in as cover_live_in
from bpfpatch.passes.liveness import live_out as blind_live_out
from bpfpatch.passes.zext import needs_zext
from bpfpatch.prove.equiv import live_registers
from progtools import reference_successors

REGS = st.integers(0, 9)
SIZES = st.sampled_from(list(Size))


@st.composite
def straight(draw):
    """One non-jump instruction (ALU 32/64, loads, stores, atomics, calls, legacy loads)."""
    k = draw(st.integers(0, 11))
    r, s = draw(REGS), draw(REGS)
    if k == 0:
        return b.alu64_reg(draw(st.sampled_from([AluOp.ADD, AluOp.MOV, AluOp.XOR])), r, s)
    if k == 1:
        return b.alu32_reg(draw(st.sampled_from([AluOp.ADD, AluOp.MOV, AluOp.OR])), r, s)
    if k == 2:
        return b.alu64_imm(draw(st.sampled_from([AluOp.ADD, AluOp.MOV, AluOp.LSH])), r, 3)
    if k == 3:
        return b.alu32_imm(draw(st.sampled_from([AluOp.SUB, AluOp.MOV])), r, 1)
    if k == 4:
        return b.ldx_mem(draw(SIZES), r, s, 0)
    if k == 5:
        return b.stx_mem(draw(SIZES), r, s, -8)
    if k == 6:
        return b.st_mem(draw(SIZES), r, 0, 1)
    if k == 7:
        return draw(st.sampled_from([b.atomic_add, b.atomic_fetch_add, b.atomic_xchg, b.atomic_cmpxchg]))(
            draw(st.sampled_from([Size.W, Size.DW])), r, s, 0)
    if k == 8:
        return b.call_helper(draw(st.integers(1, 5)))
    if k == 9:
        return b.ld_ind(Size.W, s, 2) if draw(st.booleans()) else b.ld_abs(Size.H, 12)
    if k == 10:
        return b.ld_imm64(r, 1 << 40)
    return draw(st.sampled_from([b.neg64(r), b.neg32(r), b.to_be(r, 32), b.bswap(r, 64)]))


@st.composite
def lists(draw):
    """A patch list over a program with forward and backward jumps, some nodes deleted."""
    n = draw(st.integers(2, 40))
    body = []
    for i in range(n):
        if draw(st.integers(0, 3)) == 0:
            body.append(("jump", draw(st.sampled_from(["ja", "jgt", "jeq32", "jset"])), draw(st.integers(0, n)),
                         draw(REGS), draw(REGS)))
        else:
            body.append(("insn", draw(straight())))
    # Lay out with slot numbers (ld_imm64 takes two), then resolve jump offsets to slots.
    slots, s = [], 0
    for item in body:
        slots.append(s)
        s += 2 if item[0] == "insn" and KIND_OF[item[1].code] == Kind.LD_IMM64 else 1
    slots.append(s)  # the final exit
    insns = []
    for i, item in enumerate(body):
        if item[0] == "insn":
            insns.append(item[1])
            continue
        _, op, tgt, r, q = item
        off = slots[tgt] - slots[i] - 1
        insns.append(b.ja(off) if op == "ja" else b.jgt_reg(r, q, off) if op == "jgt" else
                     b.jeq32_imm(r, 7, off) if op == "jeq32" else b.jmp_imm(JmpOp.JSET, r, 4, off))
    insns.append(b.exit_insn())
    pl = PatchList(Program.from_insns(insns))
    nodes = list(pl)
    for k in draw(st.lists(st.integers(0, len(nodes) - 2), max_size=3, unique=True)):
        pl.delete(nodes[k])  # jumps to it now land on the next live node
    return pl


def reference(pl: PatchList, wide: bool) -> list[int]:
    """Registers live before each live node: sweep backwards over all nodes until nothing changes."""
    nodes = list(pl)
    succ = reference_successors(nodes)
    if wide:
        masks = [(sum(1 << r for r in u), sum(1 << r for r in d)) for u, d, _ in map(wide_uses_defs, (n.insn for n in nodes))]
    else:
        masks = [uses_defs(n.insn) for n in nodes]
    live = [0] * len(nodes)
    changed = True
    while changed:
        changed = False
        for i in range(len(nodes) - 1, -1, -1):
            out = 0
            for x in succ[i]:
                out |= live[x]
            new = masks[i][0] | (out & ~masks[i][1])
            if new != live[i]:
                live[i], changed = new, True
    return live


def _outs(live_in: list[int], pl: PatchList) -> list[int]:
    nodes = list(pl)
    index = {n: i for i, n in enumerate(nodes)}
    outs = []
    for i, node in enumerate(nodes):
        kind = KIND_OF[node.insn.code]
        out = live_in[i + 1] if i + 1 < len(nodes) and kind not in (Kind.EXIT, Kind.JA, Kind.GOTOL) else 0
        if kind in (Kind.JA, Kind.GOTOL, Kind.JCOND_K, Kind.JCOND_X) and node.target in index:
            out |= live_in[index[node.target]]
        outs.append(out)
    return outs


@settings(max_examples=200, deadline=None)
@given(lists())
def test_the_one_liveness_is_the_fixed_point(pl):
    for wide in (False, True):
        ref = reference(pl, wide)
        ids, live, _ = list_liveness(pl, wide=wide)
        assert ids.tolist() == [n.id for n in pl]
        assert list(live.live_in) == ref, wide
        outs = _outs(ref, pl)
        assert [live.out(i) for i in range(len(ids))] == outs
        assert live.live_out().tolist() == outs


@settings(max_examples=100, deadline=None)
@given(lists())
def test_every_user_reads_the_same_liveness(pl):
    ref = reference(pl, wide=False)
    nodes = list(pl)
    # blind's per-site live-out
    got_nodes, outs = blind_live_out(pl)
    assert got_nodes == nodes and outs.tolist() == _outs(ref, pl)
    # the flow graph (one subprogram here: its blocks fall through like the list)
    g = FlowGraph(pl)
    for i, node in enumerate(nodes):
        assert g.live_before(node) == frozenset(r for r in range(11) if ref[i] >> r & 1)
    # zext: a 32-bit definition whose register is live (as 64 bits) after it
    wide = reference(pl, wide=True)
    wide_out = _outs(wide, pl)
    want = [n.id for i, n in enumerate(nodes)
            if (d := wide_uses_defs(n.insn)[2]) is not None and wide_out[i] >> d & 1]
    assert [n.id for n in needs_zext(pl)] == want
    # coverage's per-slot masks, on the linearized program
    fresh = PatchList(pl.linearize())
    ref = reference(fresh, wide=False)
    per_slot = cover_live_in(fresh.program.to_bytes())
    assert [per_slot[n.orig_idx] for n in fresh] == ref
    # the verifier's per-slot liveness (both views) and the prover's live registers
    slots = fresh.program.slots
    regs = slots["regs"].tolist()
    live, live64 = slot_liveness(slots["code"].tolist(), [r & 15 for r in regs], [r >> 4 for r in regs],
                                 slots["off"].tolist(), slots["imm"].tolist())
    assert [live[n.orig_idx] for n in fresh] == ref
    assert [live64[n.orig_idx] for n in fresh] == reference(fresh, wide=True)
    proved = live_registers(fresh.program)
    assert [proved[n.orig_idx] for n in fresh] == [frozenset(r for r in range(11) if m >> r & 1) | {10} for m in ref]


def _edge_positions(pl: PatchList) -> list[set[int]]:
    """Per instruction of `pl`'s program: the positions `slot_edges` says control goes to next."""
    slots = pl.program.slots
    regs = slots["regs"].tolist()
    code = slots["code"].tolist()
    fall, tgt = slot_edges(code, [r >> 4 for r in regs], slots["off"].tolist(), slots["imm"].tolist())
    pos = {n.orig_idx: i for i, n in enumerate(pl)}
    out = []
    for i, node in enumerate(pl):
        s = node.orig_idx
        wide = KIND_OF[code[s]] == Kind.LD_IMM64
        nxt = {i + 1} if fall[s] and (not wide or fall[s + 1]) else set()
        out.append(nxt | ({pos[tgt[s]]} if tgt[s] >= 0 else set()))
    return out


@settings(max_examples=100, deadline=None)
@given(lists())
def test_slot_edges_are_the_edges_the_nodes_hold(pl):
    # The verifier's slot-column edges (offset field by isa's rule) against the nodes' own targets.
    fresh = PatchList(pl.linearize())
    assert _edge_positions(fresh) == [set(s) for s in reference_successors(list(fresh))]


def test_slot_edges_read_gotol_from_imm_and_skip_an_ld_imm64s_second_slot():
    # slots: 0 ld_imm64 r1 (two slots); 2 gotol +2 -> 5; 3 may_goto +1 -> 5; 4 ja -3 -> 2; 5 jeq r1, 0, -2 -> 4; 6 exit
    insns = [b.ld_imm64(1, 7), b.gotol(2), b.may_goto(1), b.ja(-3), b.jeq_imm(1, 0, -2), b.exit_insn()]
    pl = PatchList(Program.from_insns(insns))
    assert _edge_positions(pl) == [{1}, {4}, {3, 4}, {1}, {3, 5}, set()]


def test_a_helper_reads_only_its_prototypes_arguments_in_the_verifiers_view():
    # r1 = 1; r2 = 2; call bpf_ktime_get_ns (no arguments); exit: r1 and r2 are dead before the call
    insns = [b.mov64_imm(1, 1), b.mov64_imm(2, 2), b.call_helper(5), b.mov64_imm(0, 0), b.exit_insn()]
    slots = Program.from_insns(insns).slots
    regs = slots["regs"].tolist()
    columns = (slots["code"].tolist(), [r & 15 for r in regs], [r >> 4 for r in regs], slots["off"].tolist(),
               slots["imm"].tolist())
    assert slot_liveness(*columns)[0][2] == 0b111110  # unknown prototype: r1-r5
    assert slot_liveness(*columns, helper_args=lambda func: 0)[0][2] == 0
    assert slot_liveness(*columns, helper_args=lambda func: 2)[0][1] == 0b10  # r2 written here, r1 still read
