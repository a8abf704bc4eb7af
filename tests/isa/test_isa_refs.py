"""The reference table: where each instruction keeps its target, and what it refers to."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfpatch import Insn, PatchError, PatchList, Program
from bpfpatch.isa import (
    KIND_OF,
    Kind,
    Ref,
    Target,
    branch_offsets,
    insn_of_words,
    insn_words,
    insns_to_slots,
    may_target_slots,
    ref_of,
    refs_of_words,
    target_of,
)
from bpfpatch.isa.refs import MAY_TARGET
from progtools import programs

# One row per case the kernel distinguishes: (code, src) -> (Ref, Target), read off
# kernel/bpf/verifier.c (check_cond_jmp_op / check_helper_call / check_ld_imm / bpf_pseudo_func).
CASES = [
    (0x05, 0, Ref.JUMP, Target.OFF),  # ja
    (0x06, 0, Ref.JUMP, Target.IMM),  # gotol (JMP32 | JA)
    (0x15, 0, Ref.JUMP, Target.OFF),  # jeq imm
    (0x1D, 0, Ref.JUMP, Target.OFF),  # jeq reg
    (0x16, 0, Ref.JUMP, Target.OFF),  # jeq32 imm
    (0xE5, 0, Ref.JUMP, Target.OFF),  # may_goto
    (0x85, 0, Ref.HELPER, Target.NONE),
    (0x85, 1, Ref.SUBPROG, Target.IMM),
    (0x85, 2, Ref.KFUNC, Target.NONE),
    (0x95, 0, Ref.NONE, Target.NONE),  # exit
    (0x18, 0, Ref.NONE, Target.NONE),  # plain ld_imm64
    (0x18, 1, Ref.MAP_FD, Target.NONE),
    (0x18, 2, Ref.MAP_VALUE, Target.NONE),
    (0x18, 3, Ref.BTF_ID, Target.NONE),
    (0x18, 4, Ref.FUNC, Target.IMM),
    (0x18, 5, Ref.MAP_IDX, Target.NONE),
    (0x18, 6, Ref.MAP_IDX_VALUE, Target.NONE),
    (0xB7, 0, Ref.NONE, Target.NONE),  # mov
    (0x61, 1, Ref.NONE, Target.NONE),  # ldx
]


def test_table_rows():
    for code, src, ref, target in CASES:
        assert ref_of(code, src) == ref, hex(code)
        assert target_of(code, src) == target, hex(code)
        assert Insn(code, 0, src).ref == ref and Insn(code, 0, src).target_field == target


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 255), max_size=300))
def test_the_class_screen_finds_exactly_the_opcodes_the_table_marks(codes):
    """`may_target_slots` (two compares on the class bits, then the table on what is left) against the
    table lookup on every opcode, every opcode value included."""
    code = np.array(list(range(256)) + codes, dtype=np.uint8)
    assert may_target_slots(code).tolist() == np.flatnonzero(MAY_TARGET[code]).tolist()


def test_jumps_are_exactly_the_jump_kinds():
    jump_kinds = {Kind.JA, Kind.GOTOL, Kind.JCOND_K, Kind.JCOND_X, Kind.MAY_GOTO}
    for code in range(256):
        for src in range(16):
            assert (ref_of(code, src) == Ref.JUMP) == (KIND_OF[code] in jump_kinds)


def test_offsets_read_and_written_through_the_field():
    for code, src, _ref, target in CASES:
        insn = Insn(code, 0, src)
        moved = insn.with_offset(-7)
        if target == Target.NONE:
            assert insn.branch_offset is None
        else:
            assert moved.branch_offset == -7
            assert (moved.off == -7) == (target == Target.OFF)
    # a pseudo-func ld_imm64 keeps its high word
    assert Insn(0x18, 1, 4, 0, (5 << 32) | 3).with_offset(-1).imm == (5 << 32) | 0xFFFFFFFF


@settings(max_examples=60, deadline=None)
@given(programs(metadata=False))
def test_vectorized_offsets_equal_per_instruction(prog):
    idx, rel = branch_offsets(prog.slots)
    slot = 0
    want = []
    for insn in prog.insns:
        if insn.branch_offset is not None:
            want.append((slot, insn.branch_offset))
        slot += insn.nslots
    assert list(zip(idx.tolist(), rel.tolist())) == want
    # words and the table agree too
    w = prog.slots.view(np.uint64)[idx]
    assert all(r in (Ref.JUMP, Ref.SUBPROG, Ref.FUNC) for r in refs_of_words(w).tolist())


@settings(max_examples=60, deadline=None)
@given(programs(metadata=False))
def test_words_round_trip(prog):
    for insn in prog.insns:
        assert insn_of_words(*insn_words(insn)) == insn
    w0 = [insn_words(i)[0] for i in prog.insns if i.code != 0x18]
    assert w0 == [int(x) for x in insns_to_slots([i for i in prog.insns if i.code != 0x18]).view(np.uint64)]


@settings(max_examples=40, deadline=None)
@given(programs(metadata=False), st.data())
def test_target_ids_equal_node_target(prog, data):
    pl = PatchList(prog)
    nodes = list(pl)
    for node in data.draw(st.lists(st.sampled_from(nodes), max_size=3, unique=True)):
        if len(pl) > 1:
            try:
                pl.delete(node)
            except PatchError:  # the last instruction of a called subprogram stays
                pass
    live = [n for n in pl]
    got = pl.target_ids(np.array([n.id for n in live], dtype=np.int64)).tolist()
    assert got == [n.target.id if n.target is not None else -1 for n in live]
    for n in live:
        assert pl.node(n.id) == n
        assert n.ref == n.insn.ref
    assert pl.find(0) == pl.node_at(0) and pl.id_bound >= len(nodes) + 1
    assert Program.from_insns(prog.insns).to_bytes() == prog.to_bytes()
