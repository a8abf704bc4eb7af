"""PatchList + linearize against the kernel's one-patch-at-a-time semantics.

Random valid programs (subprograms, ld_imm64, pseudo calls and funcs, JMP32,
backward jumps, func/line info, aux data) and random sequences of replace /
prepend / append / delete must give exactly the same bytes, aux data,
subprogram starts and func/line info through both implementations.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfpatch import PatchError, PatchList
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


# The fast paths (deferred replaces linked one at a time or as groups, the order cache,
# blocks, replace_rows) are driven against the reference by test_patch_state_machine.py.
