"""Deferred replaces: `replace` with a patch seen before changes the node now and links later.

A pass that patches every site alike calls ``replace(node, patch)`` with one
patch (or equal ones) many times.  Each such call writes the node's new
instruction at once (so ``node.insn`` never waits) and records the site
under its prepared patch; the new nodes before the sites are linked when the
list is next looked at -- the list's one settle point -- all sites of a
patch in one NumPy pass (`group.link_group`), or, with few sites or the
group path off, one at a time (`apply.replace_now`).  `settle_in_place`
instead gives the pending sites to `linearize` as blocks.

Settling gives exactly what the replaces would have given one at a time in
the order they were made: every site keeps its place and its id, its new
nodes go right before it, references to it move to the first of them, and a
reference to "the node after the patch" is taken before any move (so it
lands on the next site's patch, as a kernel patch would).
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np

from bpfpatch.patch.apply import replace_now
from bpfpatch.patch.buffer import BufferCache, Prepared
from bpfpatch.patch.buffer import ToSiteTarget
from bpfpatch.patch.fast.group import GroupPatch, link_group, of_prepared
from bpfpatch.patch.fast.order import OrderCache
from bpfpatch.patch.node import Node
from bpfpatch.patch.store import DELETED, END, ID_DTYPE, ID_TYPECODE, NO_ANCHOR, NodeStore, view

# Values of the mark byte per node: where the `replace` fast path may defer.
FREE, PENDING, BLOCKED = 0, 1, 2


class Deferred:
    """The deferred replaces of one list: pending sites by prepared patch, and one mark byte per node.

    The mark says FREE where the fast path may defer a replace without
    further checks (a live node, not pending, with a live node after it),
    PENDING where a replace is deferred, BLOCKED otherwise (conservatively:
    a node whose next node is deleted, or that gained a next node since,
    stays BLOCKED until it is settled).
    """

    def __init__(self, store: NodeStore, buffers: BufferCache, order: OrderCache, *, group: bool, group_min: int = 16) -> None:
        self.store = store
        self.buffers = buffers
        self.order = order
        self.group = group
        self.group_min = group_min  # fewer deferred replaces than this are linked one at a time
        # By id of the prepared patch; deferred `replace_rows` groups by ("rows", count), their
        # `GroupPatch` in place of a prepared patch (settled first: they are always the oldest).
        self.groups: dict[Any, tuple[Prepared | GroupPatch, array]] = {}
        self.mark = bytearray()
        # (the patch, its pending sites, its last word, may an equal patch use it) of the last
        # deferral: a pass repeating one patch then costs one identity test (the same tuple)
        # or one comparison (an equal fresh list, tuple or text) and one append.
        # A list changed in place (never rebound), so the list's fast path holds it directly.
        self.last: list[Any] = [None, None, 0, False]
        self._w0, self._w1, self._wide = store.w0, store.w1, store.wide  # columns only grow in place
        self._next, self._orig = store.next, store.orig

    def _extend_mark(self) -> None:
        """Cover the nodes created since the mark last grew."""
        start = len(self.mark)
        orig, nxt = view(self._orig), view(self._next)[start:]
        # Conservative: a node whose next node is deleted may be the last live one.
        blocked = (orig[start:] == DELETED) | (nxt == END) | (orig[np.maximum(nxt, 0)] == DELETED)
        del orig, nxt
        if start == 0:
            blocked[0] = True  # the dummy head
        self.mark.extend(np.where(blocked, BLOCKED, FREE).astype(np.uint8).tobytes())

    def forget(self, x: int) -> None:
        """Node `x` was deleted: the fast path must not defer on it, nor on a node it leaves last."""
        if x < len(self.mark):
            self.mark[x] = BLOCKED
        if self.store.next_live(x) == END:
            p = self.store.prev[x]
            while p > 0 and self._orig[p] == DELETED:
                p = self.store.prev[p]
            if 0 < p < len(self.mark):
                self.mark[p] = BLOCKED

    def pending_sites(self) -> list[int]:
        """Every node with a deferred replace."""
        return [x for _, xs in self.groups.values() for x in xs]

    def settle(self) -> None:
        """Link the new nodes of every deferred replace (see the module docstring)."""
        groups = self.groups
        few = not self.group or sum(len(xs) for _, xs in groups.values()) < self.group_min
        self.groups = {}
        self.last[:] = (None, None, 0, False)
        mark, nxt = self.mark, self._next
        for prep, xs in groups.values():
            if type(prep) is GroupPatch:  # deferred replace_rows: always in one NumPy pass
                sites = prep.sites
                after = view(nxt)[sites]
                tail = (after == END) | (view(self._orig)[np.maximum(after, 0)] == DELETED)
                np.frombuffer(mark, dtype=np.uint8)[sites] = np.where(tail, BLOCKED, FREE)
                link_group(self.store, self.order, prep)
            elif few:
                for x in xs:
                    after = nxt[x]
                    mark[x] = FREE if after != END and self._orig[after] != DELETED else BLOCKED  # pending sites are live
                    replace_now(self.store, x, prep, True)
            else:
                sites = np.frombuffer(xs, dtype=ID_DTYPE).astype(np.int64)  # widened once for the gathers
                after = view(nxt)[sites]
                tail = (after == END) | (view(self._orig)[np.maximum(after, 0)] == DELETED)
                np.frombuffer(mark, dtype=np.uint8)[sites] = np.where(tail, BLOCKED, FREE)
                link_group(self.store, self.order, of_prepared(prep, sites))

    def rows_only(self) -> bool:
        """Are all deferred replaces `replace_rows` groups (none of a prepared patch)?"""
        return all(type(prep) is GroupPatch for prep, _ in self.groups.values())

    def pending_among(self, ids: np.ndarray) -> bool:
        """Is any of node ids `ids` a pending site?"""
        if not self.groups:
            return False
        mark = np.frombuffer(self.mark, dtype=np.uint8)
        inside = ids[ids < len(mark)]
        hit = bool((mark[inside] == PENDING).any())
        del mark
        return hit

    def defer_rows(self, g: GroupPatch) -> bool:
        """Defer a `replace_rows` group (`PatchList.replace_rows`, the group path), or say False.

        Deferred: a group whose new rows reference nothing and whose site
        keeps its own target (or none), no site's jump landing on the site
        itself.  Its in-place half is written now (the sites' words, width
        and references, as `link_group` writes them first); the new nodes are
        made at the settle point, or never: `linearize` lays them out as a
        block of rows (`blocks.block`), 8 bytes a new instruction instead of a
        row in every column.  Only behind other deferred row groups (whose
        sites it must not share): those are linked first, in the order made.
        """
        if not self.rows_only() or any(not (isinstance(r, ToSiteTarget) and r.item == g.k) for r in g.refs):
            return False
        store, xs = self.store, g.sites
        if g.refs:  # a site whose jump lands on itself must keep landing on itself: link those now
            an = view(store.anchor_node)[g.site_target]
            orig = view(store.orig)
            hit = an == xs
            for j in np.flatnonzero(orig[an] == DELETED).tolist():
                hit[j] = store.landing(int(an[j])) == int(xs[j])
            del orig, an
            if hit.any():
                return False
        if len(self.mark) < len(self._orig):
            self._extend_mark()
        w0, w1 = view(store.w0, np.uint64), view(store.w1, np.uint64)
        wide, dirty, target = view(store.wide, np.uint8), view(store.dirty, np.uint8), view(store.target)
        mark = np.frombuffer(self.mark, dtype=np.uint8)
        try:
            w0[xs], w1[xs], wide[xs] = g.last_w0, g.last_w1, g.last_wide
            dirty[xs[xs < len(dirty)]] = 1
            if not g.refs:
                target[xs] = NO_ANCHOR
            mark[xs] = PENDING
        finally:
            del w0, w1, wide, dirty, target, mark
        store.call_index = None  # as link_group: a site's reference may have been a call
        self.groups[("rows", len(self.groups))] = (g, array(ID_TYPECODE, xs.astype(ID_DTYPE).tobytes()))
        return True

    def settle_in_place(self) -> list[tuple[Prepared, np.ndarray]]:
        """The deferred replaces as (patch, sites), each site already its patch's last instruction.

        Applies the in-place half of the link (the writes `link_group` makes
        first: the site's words and width, no reference, replaced); the new
        nodes before each site are not created.  `linearize` lays these out
        as blocks, without linking them; the replaces stay pending.
        """
        store = self.store
        out = []
        w0, w1 = view(store.w0, np.uint64), view(store.w1, np.uint64)
        wide, dirty, target = view(store.wide, np.uint8), view(store.dirty, np.uint8), view(store.target)
        try:
            for prep, xs in self.groups.values():
                if type(prep) is GroupPatch:  # its in-place half was written when it was deferred
                    out.append((prep, prep.sites))
                    continue
                sites = np.frombuffer(xs, dtype=ID_DTYPE).astype(np.int64)  # a copy: the list may go on growing
                w0[sites], w1[sites], wide[sites] = prep.last_w0, prep.last_w1, prep.last_wide
                target[sites] = NO_ANCHOR
                dirty[sites[sites < len(dirty)]] = 1
                if prep.any_aux:
                    store.aux_used = True
                out.append((prep, sites))
        finally:
            del w0, w1, wide, dirty, target
        return out


class DeferringReplace:
    """Mixin of `PatchList` (before it in the MRO): `replace` that defers where it can.

    The hot path of every pass, written out flat; whatever it cannot defer
    goes to the list's own `replace` (``super().replace``).
    """

    _deferred: Deferred
    # The deferred replaces' `last` and `mark`, and the store's first-word column, held by the
    # list itself (each changed in place, never rebound): the hot path's three attribute loads.
    _last: list
    _mark: bytearray
    _w0: array

    def replace(self, node: Node, patch: Any, *, retarget: bool = True) -> Node:
        """`PatchList.replace` (same arguments, same result), deferring the link where it can."""
        last = self._last
        # (Written without a local for last[0]: measurably faster on CPython 3.11.)
        if (patch is last[0] or (last[3] and type(patch) is type(last[0]) and patch == last[0])) \
                and type(node) is Node and node._pl is self and retarget:
            x = node._id
            mark = self._mark
            if not mark[x]:  # FREE: one byte stands for four checks
                last[1].append(x)
                mark[x] = PENDING
                # The node's new instruction, at once (one slot: its second word and
                # width only matter to the link, which rewrites them).
                self._w0[x] = last[2]
                return node
        d = self._deferred
        x = node._id if type(node) is Node and node._pl is self else 0
        if x and d._orig[x] != DELETED and retarget:
            nxt = d._next[x]
            has_after = nxt != END and (d._orig[nxt] != DELETED or d.store.landing(nxt) != END)
            prep = d.buffers.lookup(patch, has_after)
            if prep is not None and prep.deferrable:
                mark = d.mark
                if len(mark) < len(d._orig):  # no node is created while replaces are deferred
                    d._extend_mark()
                if mark[x] != PENDING:
                    group = d.groups.get(id(prep))
                    if group is None:
                        group = d.groups[id(prep)] = (prep, array(ID_TYPECODE, [x]))  # NumPy reads it in place
                    else:
                        group[1].append(x)
                    if has_after and not prep.last_wide:
                        # A list is copied (the caller may change it); equal patches may share the
                        # prepared one unless it carries aux objects (those must be the caller's).
                        d.last[:] = (list(patch) if type(patch) is list else patch, group[1], prep.last_w0, not prep.any_aux)
                    mark[x] = PENDING
                    # The node's own instruction changes now (`node.insn` never waits for the link).
                    d._w0[x] = prep.last_w0
                    d._w1[x] = prep.last_w1
                    d._wide[x] = prep.last_wide
                    return node
        return _list_replace(self, node, patch, retarget)


def _list_replace(pl: DeferringReplace, node: Node, patch: Any, retarget: bool) -> Node:
    """The list's own `replace`, the next after `DeferringReplace`'s in the MRO.

    A function of its own: a method that names ``super`` gets a ``__class__``
    cell, copied into every call's frame, on the hot path too (about 3% of the
    one-node loop).
    """
    return super(DeferringReplace, pl).replace(node, patch, retarget=retarget)  # type: ignore[misc]
