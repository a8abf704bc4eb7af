"""PatchList + linearize against the kernel's one-patch-at-a-time semantics.

Random valid programs (subprograms, ld_imm64, pseudo calls and funcs, JMP32,
backward jumps, func/line info, aux data) and random sequences of replace /
prepend / append / delete must give exactly the same bytes, aux data,
subprogram starts and func/line info through both implementations.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfpatch import Insn, PatchError, PatchInsn, PatchList
from bpfpatch.reference import ReferencePatcher

from progtools import patch_buffers, programs, slots_rows


def _compare(a, b):
    assert slots_rows(a) == slots_rows(b)
    assert a.subprogs == b.subprogs
    assert a.func_info == b.func_info
    assert a.line_info == b.line_info
    assert a.aux == b.aux


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_patchlist_matches_reference(data):
    prog = data.draw(programs())
    pl = PatchList(prog)
    ref = ReferencePatcher(prog)
    nops = data.draw(st.integers(0, 12))
    for _ in range(nops):
        live = list(pl)
        node = data.draw(st.sampled_from(live))
        op = data.draw(st.sampled_from(["replace", "prepend", "append", "delete"]))
        retarget = data.draw(st.booleans())
        if op == "delete":
            if node.next is None:
                continue  # deleting the final instruction would leave jumps past the end
            try:
                pl.delete(node)
            except PatchError:
                continue
            ref.delete(node._id)
            continue
        buf = patch_buffers(data.draw, [n for n in live if n != node])
        before = pl.linearize() if data.draw(st.integers(0, 9)) == 0 else None
        try:
            if op == "replace":
                pl.replace(node, buf, retarget=retarget)
            elif op == "prepend":
                pl.prepend(node, buf, retarget=retarget)
            else:
                pl.append(node, buf)
        except PatchError:
            # Refused (e.g. a buffer jump past the end): the list must be untouched.
            if before is not None:
                _compare(pl.linearize(), before)
            continue
        if op == "replace":
            ref.replace(node._id, buf, retarget=retarget)
        elif op == "prepend":
            ref.prepend(node._id, buf, retarget=retarget)
        else:
            ref.append(node._id, buf)
    _compare(pl.linearize(), ref.program_out())


@settings(max_examples=200, deadline=None)
@given(programs())
def test_identity(prog):
    out = PatchList(prog).linearize()
    assert out.to_bytes() == prog.to_bytes()
    assert out.subprogs == prog.subprogs
    assert out.func_info == prog.func_info
    assert out.line_info == prog.line_info
    assert out.aux == prog.aux
    assert list(out.idx_map) == list(range(len(prog.slots)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_batched_replaces_match_reference(data):
    """Replaces with reused tuple patches are deferred and linked in bulk (`_flush`).

    Many sites, a few shared patches (local jumps, jumps to the node after,
    ld_imm64, aux data), replaced in any order, then linearized as blocks or
    after an operation that forces the flush: the result must equal the
    kernel's one-at-a-time semantics.
    """
    prog = data.draw(programs())
    pl = PatchList(prog)
    pl.FLUSH_ONE_BY_ONE = data.draw(st.sampled_from([0, 16]))  # both ways of linking
    ref = ReferencePatcher(prog)
    pool = []
    for _ in range(data.draw(st.integers(1, 3))):
        buf = patch_buffers(data.draw, [])
        # No target nodes (a patch that names nodes is not memoized); aux data stays, some of
        # it a sequence (one object per new instruction, never spread over several).
        buf = [PatchInsn(it.insn, aux=(it.aux, 1) if it.aux and data.draw(st.booleans()) else it.aux)
               if isinstance(it, PatchInsn) else it for it in buf]
        pool.append(tuple(buf))
    live = list(pl)
    sites = data.draw(st.lists(st.sampled_from(live), unique_by=lambda n: n._id, max_size=len(live)))
    done = []
    for node in sites:
        patch = data.draw(st.sampled_from(pool))
        try:
            pl.replace(node, patch)
        except PatchError:
            continue  # e.g. a jump past the end at the last node: refused, list untouched
        ref.replace(node._id, list(patch), retarget=True)
        done.append(node)
    if done and data.draw(st.booleans()):
        # An operation that needs the links (here: a prepend) flushes first.
        node = data.draw(st.sampled_from(done))
        pl.prepend(node, [Insn(0xB7, 1, 0, 0, 7)])
        ref.prepend(node._id, [Insn(0xB7, 1, 0, 0, 7)], retarget=True)
    _compare(pl.linearize(), ref.program_out())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_cached_list_order_follows_the_links(data):
    """`live_ids()` (the cached, group-updated order) always equals walking the links."""
    import numpy as np

    from bpfpatch.patch import SITE, Row, S

    prog = data.draw(programs())
    pl = PatchList(prog)
    pl.FLUSH_ONE_BY_ONE = data.draw(st.sampled_from([0, 16]))  # both ways of linking
    guard = (Insn(0xB7, 1, 0, 0, 1), Insn(0xB7, 2, 0, 0, 2))
    patches: dict = {}  # one tuple per instruction: reused tuples are what replace defers
    for _ in range(data.draw(st.integers(1, 8))):
        live = list(pl)
        op = data.draw(st.sampled_from(["deferred", "rows", "prepend", "delete", "look"]))
        nodes = [n for n in live if n.insn.code != 0x18]
        if op == "deferred" and nodes:
            for node in data.draw(st.lists(st.sampled_from(nodes), max_size=6)):  # repeats: one site, two groups
                try:
                    pl.replace(node, patches.setdefault(node.insn, guard + (node.insn,)))
                except PatchError:
                    pass
                if data.draw(st.booleans()):
                    node.next  # a look at the list in between: flushes one site at a time
        elif op == "rows" and nodes:
            chosen = data.draw(st.lists(st.sampled_from(nodes), unique_by=lambda n: n._id, min_size=1))
            ids = np.array(sorted(n._id for n in chosen) if data.draw(st.booleans()) else [n._id for n in chosen])
            pl.replace_rows(ids, [Row(0x07, dst=S.dst, imm=3), Row(0xB7, dst=4, imm=4), SITE][data.draw(st.integers(0, 1)):])
        elif op == "prepend":
            pl.prepend(data.draw(st.sampled_from(live)), [Insn(0xB7, 3, 0, 0, 3)])
        elif op == "delete" and len(live) > 1:
            try:
                pl.delete(data.draw(st.sampled_from(live)))
            except PatchError:
                pass
        assert pl.live_ids().tolist() == [n._id for n in pl]
