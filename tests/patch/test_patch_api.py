"""The one-node API: semantics the kernel defines, and misuse caught at the call."""

from __future__ import annotations

import pytest

from bpfpatch import INSERTED, Insn, Node, PatchError, PatchInsn, PatchList, Program, RelocationError
from bpfpatch.patch import FastPaths
from bpfpatch.isa import build as C
from progtools import slots_rows

# r0 = 7; r1 = 2; if r1 == 0 goto +1; r0 /= r1; exit
PROG = [Insn(0xB7, 0, 0, 0, 7), Insn(0xB7, 1, 0, 0, 2), Insn(0x15, 1, 0, 1, 0), Insn(0x3F, 0, 1), Insn(0x95)]


def rows(p):
    return [r[:5] for r in slots_rows(p)]


def test_identity_and_orig_idx():
    prog = Program.from_insns(PROG)
    pl = PatchList(prog)
    assert [n.orig_idx for n in pl] == [0, 1, 2, 3, 4]
    assert len(pl) == 5
    assert pl.linearize().to_bytes() == prog.to_bytes()


def test_replace_lands_jumps_on_first_and_returns_node():
    pl = PatchList(Program.from_insns(PROG))
    div = pl.node_at(3)
    last = pl.replace(div, [Insn(0x55, 1, 0, 2), Insn(0xAC), Insn(0x05, 0, 0, 1), div.insn])
    assert last == div and div.orig_idx == 3
    out = pl.linearize()
    # `if r1 == 0 goto +1` jumped over the division to exit: now over the whole guard.
    assert rows(out)[2] == (0x15, 1, 0, 4, 0)
    assert out.idx_map.tolist() == [0, 1, 2, 3, 7]
    assert out.insn_map.tolist() == [0, 1, 2, 6, 7]
    assert [n.orig_idx for n in pl][3:6] == [INSERTED] * 3


def test_prepend_retarget_choice():
    for retarget, want in ((True, 1), (False, 2)):
        pl = PatchList(Program.from_insns(PROG))
        pl.prepend(pl.node_at(4), [Insn(0xB7, 3, 0, 0, 1)], retarget=retarget)
        # the conditional jump targeted exit: now the prepended insn (kernel) or exit itself
        assert rows(pl.linearize())[2] == (0x15, 1, 0, want, 0)


def test_delete_forwards_jumps_and_skips_in_iteration():
    pl = PatchList(Program.from_insns(PROG))
    pl.delete(pl.node_at(3))
    assert [n.orig_idx for n in pl] == [0, 1, 2, 4]
    out = pl.linearize()
    assert rows(out)[2] == (0x15, 1, 0, 0, 0)
    assert out.idx_map.tolist() == [0, 1, 2, 3, 3] and out.insn_map.tolist()[3] == -1


def test_explicit_target_reference():
    pl = PatchList(Program.from_insns(PROG))
    exit_node = pl.node_at(4)
    pl.append(pl.node_at(0), [PatchInsn(C.ja(0), target=exit_node)])
    out = pl.linearize()
    assert rows(out)[1] == (0x05, 0, 0, 3, 0)


def test_passes_patch_inserted_nodes():
    pl = PatchList(Program.from_insns(PROG))
    pl.prepend(pl.node_at(3), [Insn(0xB7, 3, 0, 0, 1)])
    seen = [n for n in pl if n.orig_idx == INSERTED]
    assert len(seen) == 1
    pl.replace(seen[0], [Insn(0xB7, 3, 0, 0, 2), Insn(0xB7, 4, 0, 0, 2)])
    assert [r[4] for r in rows(pl.linearize())[3:5]] == [2, 2]


@pytest.mark.parametrize(
    "action, message",
    [
        (lambda pl, n: pl.replace(n, []), "empty patch"),
        (lambda pl, n: pl.replace(n, [Insn(0x00)]), "invalid opcode"),
        (lambda pl, n: pl.prepend(n, [Insn(0x05, 0, 0, 5)]), "leaves the patch buffer"),
        (lambda pl, n: pl.replace(pl.node_at(4), [Insn(0x05, 0, 0, 0)]), "past the end"),
        (lambda pl, n: pl.replace(PatchList(Program.from_insns(PROG)).node_at(0), [Insn(0xB7)]), "another PatchList"),
        (lambda pl, n: (pl.delete(n), pl.replace(n, [Insn(0xB7)])), "deleted"),
        (lambda pl, n: pl.prepend(n, [PatchInsn(C.ja(0), target=_deleted(pl))]), "deleted"),
        (lambda pl, n: pl.prepend(n, [PatchInsn(Insn(0xB7), target=pl.node_at(4))]), "not a jump"),
    ],
)
def test_misuse_is_caught_at_the_call(action, message):
    pl = PatchList(Program.from_insns(PROG))
    before = pl.linearize().to_bytes()
    with pytest.raises(PatchError, match=message):
        action(pl, pl.node_at(1))
    if message != "deleted":  # (those cases delete a node on purpose first)
        assert pl.linearize().to_bytes() == before, "a refused patch changed the list"


def _deleted(pl):
    n = pl.node_at(0)
    pl.delete(n)
    return n


def test_deleting_called_subprogram_is_refused():
    # main: call +1 ; exit ; sub: r0 = 1 (only insn before exit... make sub a single exit)
    prog = Program.from_insns([Insn(0x85, 0, 1, 0, 1), Insn(0x95), Insn(0x95)])
    assert prog.subprogs == [0, 2]
    pl = PatchList(prog)
    with pytest.raises(PatchError, match="subprogram"):
        pl.delete(pl.node_at(2))


def test_unreferenced_subprogram_removal_drops_func_info():
    from bpfpatch import FuncInfo

    prog = Program.from_insns(
        [Insn(0xB7), Insn(0x95), Insn(0xB7, 0, 0, 0, 1), Insn(0x95), Insn(0x95)],
        subprogs=[0, 2, 4],
        func_info=[FuncInfo(0, 1), FuncInfo(2, 2), FuncInfo(4, 3)],
    )
    pl = PatchList(prog)
    pl.delete(pl.node_at(2))
    pl.delete(pl.node_at(3))
    out = pl.linearize()
    assert out.subprogs == [0, 2]
    assert out.func_info == [FuncInfo(0, 1), FuncInfo(2, 3)]


def _staggered(n_mid: int, cond: bool) -> Program:
    """A jump over n_mid instructions, the test_bpf.c 'staggered jumps' way."""
    jump = Insn(0x15, 1, 0, n_mid, 0) if cond else Insn(0x05, 0, 0, n_mid, 0)
    return Program.from_insns([Insn(0xB7), Insn(0xB7, 1, 0, 0, 0), jump] + [Insn(0x07, 0, 0, 0, 1)] * n_mid + [Insn(0x95)])


@pytest.mark.parametrize("cond", [False, True])
def test_offset_overflow_is_an_error_by_default_and_relaxed_on_request(cond):
    prog = _staggered(32767, cond)  # the jump offset is exactly at the edge
    pl = PatchList(prog)
    pl.prepend(pl.node_at(3), [Insn(0x07, 0, 0, 0, 1)])  # one more insn between: 32768 no longer fits
    with pytest.raises(RelocationError) as info:
        pl.linearize()
    assert info.value.index == 2 and info.value.needed == 32768
    out = pl.linearize(relax_long_jumps=True)
    ins = out.insns
    if cond:
        # inverted condition over a gotol: if r1 != 0 goto +1; gotol +32768
        assert ins[2] == Insn(0x55, 1, 0, 1, 0) and ins[3] == Insn(0x06, 0, 0, 0, 32768)
    else:
        assert ins[2] == Insn(0x06, 0, 0, 0, 32768)
    # the relaxed jump reaches the original target: the exit
    target = 3 + 32768 + 1 if cond else 2 + 32768 + 1
    assert ins[target] == Insn(0x95)


def test_edge_offset_fits_without_relaxation():
    prog = _staggered(32767, True)
    assert PatchList(prog).linearize().to_bytes() == prog.to_bytes()


# r0 = 7; r1 = 2; r0 /= r1 (x4); exit -- four sites for one memoized guard.
DIVS = [Insn(0xB7, 0, 0, 0, 7), Insn(0xB7, 1, 0, 0, 2), *[Insn(0x3F, 0, 1)] * 4, Insn(0x95)]
GUARD = (Insn(0x55, 1, 0, 2), Insn(0xAC), Insn(0x05, 0, 0, 1), Insn(0x3F, 0, 1))  # ja +1 leaves the patch


def _deferring(pl):
    """Put the list in the fast path's state: a memoized guard deferred at a site
    (the first replace with a patch prepares it, the second defers)."""
    pl.replace(pl.node_at(2), GUARD)
    pl.replace(pl.node_at(3), GUARD)
    assert pl.pending_replaces >= 1, "the fast path is not armed: this test checks nothing"


@pytest.mark.parametrize(
    "misuse, message",
    [
        (lambda pl: pl.replace(pl.head, GUARD), "head"),
        (lambda pl: (pl.delete(pl.node_at(5)), _deferring(pl), pl.replace(pl.node_at(5), GUARD)), "deleted"),
        # The last instruction has no "after" for the guard's `ja +1`.
        (lambda pl: pl.replace(pl.node_at(6), GUARD), "past the end"),
    ],
)
def test_deferred_replaces_refuse_what_a_replace_refuses(misuse, message):
    pl = PatchList(Program.from_insns(DIVS))
    _deferring(pl)
    with pytest.raises(PatchError, match=message):
        misuse(pl)


def test_replacing_a_deferred_site_again_patches_the_patch_result():
    pl = PatchList(Program.from_insns(DIVS))
    for idx in (2, 3, 4, 5):
        pl.replace(pl.node_at(idx), GUARD)
    pl.replace(pl.node_at(3), GUARD)  # the site's instruction is the division again: guard it twice
    out = [r[:5] for r in slots_rows(pl.linearize())]
    guard = [(0x55, 1, 0, 2, 0), (0xAC, 0, 0, 0, 0), (0x05, 0, 0, 1, 0), (0x3F, 0, 1, 0, 0)]
    # Site 3: the first guard's `ja +1` (over the division) now jumps over the second
    # guard too, and its `if r1 != 0 goto +2` lands on the second guard (kernel semantics).
    assert out[2:6] == guard and out[13:17] == guard
    assert out[6:9] == [guard[0], guard[1], (0x05, 0, 0, 4, 0)] and out[9:13] == guard
    assert len(out) == 2 + 4 * 4 + 3 + 1


@pytest.mark.parametrize("patched_before", [False, True], ids=["fresh list", "list with inserted nodes"])
def test_iteration_sees_deletes_ahead_and_skips_nodes_inserted_during_it(patched_before):
    pl = PatchList(Program.from_insns(DIVS))
    if patched_before:
        pl.prepend(pl.node_at(2), [Insn(0xB7, 3)])
    seen = []
    for node in pl:
        seen.append(node.orig_idx)
        if node.orig_idx == 2:
            pl.delete(pl.node_at(4))  # ahead of the loop: never visited
            pl.append(node, [Insn(0xB7, 4)])  # inserted during the loop: not visited
            pl.prepend(pl.node_at(5), [Insn(0xB7, 5)])
    assert seen == [0, 1, *([INSERTED] if patched_before else []), 2, 3, 5, 6]
    assert [n.orig_idx for n in pl].count(INSERTED) == 2 + patched_before


def test_id_columns_keep_one_width_through_every_kind_of_growth():
    # Bytes of the wrong width appended to a column are not an error, just more (wrong)
    # entries: every path that grows the columns must keep them as long as the word column.
    import numpy as np

    from bpfpatch.patch.bulk import SITE, Row
    from bpfpatch.patch import FastPaths

    pl = PatchList(Program.from_insns(DIVS * 8))
    divisions = [7 * j + i for j in range(8) for i in range(2, 6)]
    for idx in divisions[: FastPaths().group_min + 2]:
        pl.replace(pl.node_at(idx), GUARD)  # the first at once, the rest deferred
    pl.prepend(pl.node_at(divisions[-1]), [Insn(0xB7, 3)])  # flushes the deferred ones as a group
    pl.append(pl.node_at(divisions[-1]), [Insn(0xB7, 4), Insn(0x05, 0, 0, -2)])
    ids = pl.live_ids()
    sites = ids[pl.orig_indices(ids) > divisions[FastPaths().group_min + 2]]
    sites = sites[(pl.words(sites)[0] & np.uint64(0xFF)) == 0x3F]
    pl.replace_rows(sites, [Row(0x55, dst=1, off=2), Row(0xAC), Row(0x05, off=1), SITE])
    pl.linearize()
    pl.check()  # column lengths and typecodes, anchors one to one with their nodes, the order cache


@pytest.mark.parametrize("given", [None, PROG, Program.from_insns(PROG).to_bytes(), "r0 = 0\nexit"])
def test_a_patch_list_is_made_from_a_program_only(given):
    with pytest.raises(PatchError, match="made from a Program, not"):
        PatchList(given)


@pytest.mark.parametrize("insns, message", [
    ([None], "instruction 0: not an instruction"),
    ([C.mov64_imm(0, 1), (0xB7, 0, 0)], "instruction 1: not an instruction"),
    ([Insn(0xB7, 16, 0, 0, 1)], "instruction 0: field dst 16 does not fit"),   # was r0 = 1
    ([Insn(0xB7, 0, 16, 0, 1)], "instruction 0: field src 16 does not fit"),   # spilled into off
    ([Insn(0xB7, 0, 0, 0, 1 << 40)], "instruction 0: field imm 1099511627776"),  # was 0
    ([Insn(0xB7, 0, 0, -40000, 1)], "instruction 0: field off -40000"),         # was +25536
    ([Insn(0xB7, 0, 0, 0, 1.5)], "instruction 0: field imm is a float"),
    ([C.ld_imm64(1, 1 << 63), Insn(0xB7, 0, 0, 0, 1.5)], "instruction 1: field imm is a float"),  # counted past the pair
    ([Insn(0x18, 1, 0, 0, 1 << 64)], "instruction 0: ld_imm64 immediate"),
])
def test_program_from_insns_refuses_what_it_would_mangle(insns, message):
    from bpfpatch.errors import DecodeError

    with pytest.raises(DecodeError, match=message):
        Program.from_insns(insns)


# Before a division by r1: if r1 != 0 goto +2 (onto the division); w0 ^= w0; r1 = 1 (a zero divisor gives 0).
PRE_GUARD = [C.jne_imm(1, 0, 2), C.xor32_reg(0, 0), C.mov64_imm(1, 1)]


@pytest.mark.parametrize("op", ["prepend", "append"])
def test_deferred_inserts_return_their_last_new_node(op):
    """A fresh list per site, as users write it: deferred from the second site on; each call returns
    the node of its last new instruction, usable at once, and the program is the simple list's."""
    lists = [PatchList(Program.from_insns(DIVS)), PatchList(Program.from_insns(DIVS), fast=FastPaths.none())]
    made = []
    for pl in lists:
        for idx in (2, 3, 4, 5):
            node = pl.node_at(idx)
            # (an append after the instruction before the division puts the guard at the same place)
            made.append(pl.prepend(node, list(PRE_GUARD)) if op == "prepend" else pl.append(pl.node_at(idx - 1), list(PRE_GUARD)))
        if pl is lists[0]:
            assert pl.pending_replaces == 3, "the inserts were not deferred: this test checks nothing"
    assert rows(lists[0].linearize()) == rows(lists[1].linearize())
    fast = made[:4]
    assert all(isinstance(n, Node) and n.orig_idx == INSERTED and n.insn == PRE_GUARD[-1] for n in fast)
    assert [n.next.orig_idx for n in fast] == [2, 3, 4, 5]  # each sits right before its division
    lists[0].replace(fast[1], [C.mov64_imm(1, 2)])  # a returned node is a node like any other
    assert rows(lists[0].linearize())[8] == (0xB7, 1, 0, 0, 2)  # r0 = 7; r1 = 2; guard; division; guard


def test_a_patch_that_is_none_is_refused_whatever_the_fast_paths_did_before():
    pl = PatchList(Program.from_insns(DIVS))
    _deferring(pl)
    len(pl)  # settled: the fast path's last patch is gone
    for call in (pl.replace, pl.prepend, pl.append):
        with pytest.raises(PatchError, match="not NoneType"):
            call(pl.node_at(4), None)
