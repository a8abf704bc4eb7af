"""Deferred replaces and inserts: `replace`, `prepend` or `append` with a patch seen before links later.

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

`prepend` (``retarget=True``) and `append` with a patch seen before defer
the same way (`InsertGroup`): nothing changes until the settle point, where
a prepend's new nodes go before its site and an append's right after its
site, all sites of a patch in one NumPy pass.  Each returns a `NewNode`,
whose id is known once linked.  A site has at most one deferred operation,
and the orders of the inserts commute: what an append puts after a node and
what a prepend or replace puts before the next node land in the kernel's
order whichever is linked first, since a reference to "the node after" is
an anchor, which a later retarget moves.
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np

from bpfpatch.patch.apply import insert_after, insert_before, replace_now
from bpfpatch.patch.buffer import BufferCache, Prepared
from bpfpatch.patch.buffer import ToSiteTarget
from bpfpatch.patch.fast.group import GroupPatch, InsertGroup, insert_group, link_group, of_inserts, of_prepared
from bpfpatch.patch.fast.order import OrderCache
from bpfpatch.patch.node import NewNode, Node
from bpfpatch.patch.store import DELETED, END, ID_DTYPE, ID_TYPECODE, NO_ANCHOR, NodeStore, view

# Values of the mark byte per node: where the `replace` fast path may defer.
FREE, PENDING, BLOCKED = 0, 1, 2
#: What the fast paths' last patch is while there is none: no patch is this object (None is
#: a patch a caller may pass, to be refused).
NOTHING = object()


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
        # Deferred inserts by (before, id of the prepared patch), an `InsertGroup` each.
        self.groups: dict[Any, tuple[Prepared | GroupPatch | InsertGroup, array]] = {}
        self.mark = bytearray()
        # (the patch, its pending sites, its last word, may an equal patch use it) of the last
        # deferral: a pass repeating one patch then costs one identity test (the same tuple)
        # or one comparison (an equal fresh list, tuple or text) and one append.
        # A list changed in place (never rebound), so the list's fast path holds it directly.
        self.last: list[Any] = [NOTHING, None, 0, False]
        # The same for deferred prepends and appends: (the patch, its pending sites, the group's
        # first-id cell, may an equal patch use it, the patch's length).
        self.last_pre: list[Any] = [NOTHING, None, None, False, 0]
        self.last_app: list[Any] = [NOTHING, None, None, False, 0]
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
        self.last[:] = (NOTHING, None, 0, False)
        self.last_pre[:] = self.last_app[:] = (NOTHING, None, None, False, 0)
        mark, nxt = self.mark, self._next
        for prep, xs in groups.values():
            if type(prep) is InsertGroup:
                self._settle_inserts(prep, xs, few)
            elif type(prep) is GroupPatch:  # deferred replace_rows: always in one NumPy pass
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

    def _settle_inserts(self, g: InsertGroup, xs: array, few: bool) -> None:
        """Link a group of deferred prepends or appends (their new ids from ``g.first``, site by site)."""
        mark, nxt, orig = self.mark, self._next, self._orig
        g.first[0] = len(orig)
        if few:
            for x in xs:
                if g.before:
                    after = nxt[x]
                    mark[x] = FREE if after != END and orig[after] != DELETED else BLOCKED  # pending sites are live
                    insert_before(self.store, x, g.prep, True)
                else:
                    insert_after(self.store, x, g.prep)
                    mark[x] = FREE  # its next node is now the first new one
            return
        sites = np.frombuffer(xs, dtype=ID_DTYPE).astype(np.int64)
        after = view(nxt)[sites].astype(np.int64)
        if g.before:
            tail = (after == END) | (view(orig)[np.maximum(after, 0)] == DELETED)
            np.frombuffer(mark, dtype=np.uint8)[sites] = np.where(tail, BLOCKED, FREE)
            link_group(self.store, self.order, of_inserts(g, sites))
        else:  # an append goes before the node after its site (never the end: see `defer_insert`)
            np.frombuffer(mark, dtype=np.uint8)[sites] = FREE
            link_group(self.store, self.order, of_inserts(g, after))

    def defer_insert(self, pl: Any, node: Node, patch: Any, before: bool) -> NewNode | None:
        """Defer ``prepend(node, patch)`` (`before`, retarget) or ``append(node, patch)`` and return the
        handle of its last new node, or say None (the list then links it at once).

        Deferred: a patch prepared before (`BufferCache.lookup`) whose references stay inside the
        patch or go to the node after it, at a live node without a deferred operation (for an
        append, one with a node after it).
        """
        x = node._id if type(node) is Node and node._pl is pl else 0
        orig = self._orig
        if not x or orig[x] == DELETED:
            return None
        nxt = self._next[x]
        if not before and nxt == END:
            return None
        has_after = nxt != END and (orig[nxt] != DELETED or self.store.landing(nxt) != END)
        prep = self.buffers.lookup(patch, True if before else has_after)
        if prep is None or not prep.insertable:
            return None
        mark = self.mark
        if len(mark) < len(orig):  # no node is created while operations are deferred
            self._extend_mark()
        if mark[x] == PENDING:
            return None
        key = (before, id(prep))
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = (insert_group(prep, before), array(ID_TYPECODE))
        g, sites = group
        k = len(prep.w0)
        new = _new_handle(NewNode)
        new._pl, new._first, new._at = pl, g.first, len(sites) * k + k - 1
        sites.append(x)
        mark[x] = PENDING
        # As for replace: a list is copied, and an equal patch may share the group unless it carries aux.
        (self.last_pre if before else self.last_app)[:] = (list(patch) if type(patch) is list else patch, sites, g.first,
                                                          not prep.any_aux, k)
        return new

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

    def settle_in_place(self) -> list[tuple[Prepared | GroupPatch | InsertGroup, np.ndarray]]:
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
                if type(prep) is InsertGroup:  # nothing changes in place: the sites keep their words
                    out.append((prep, np.frombuffer(xs, dtype=ID_DTYPE).astype(np.int64)))
                    if prep.prep.any_aux:
                        store.aux_used = True
                    continue
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
    """Mixin of `PatchList` (before it in the MRO): `replace`, `prepend` and `append` that defer where they can.

    The hot path of every pass, written out flat; whatever it cannot defer
    goes to the list's own method (``super().replace`` ...).
    """

    _deferred: Deferred
    # The deferred replaces' `last` and `mark`, and the store's first-word column, held by the
    # list itself (each changed in place, never rebound): the hot path's three attribute loads.
    _last: list
    _last_pre: list
    _last_app: list
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

    def prepend(self, node: Node, patch: Any, *, retarget: bool = True) -> Node:
        """`PatchList.prepend` (same arguments, same result), deferring the link where it can."""
        last = self._last_pre
        if (patch is last[0] or (last[3] and type(patch) is type(last[0]) and patch == last[0])) \
                and type(node) is Node and node._pl is self and retarget:
            x = node._id
            mark = self._mark
            if not mark[x]:  # FREE: live, and nothing deferred at it
                sites, k = last[1], last[4]
                new = _new_handle(NewNode)
                new._pl, new._first, new._at = self, last[2], len(sites) * k + k - 1
                sites.append(x)
                mark[x] = PENDING
                return new
        if retarget:
            new = self._deferred.defer_insert(self, node, patch, True)
            if new is not None:
                return new
        return _list_prepend(self, node, patch, retarget)

    def append(self, node: Node, patch: Any) -> Node:
        """`PatchList.append` (same arguments, same result), deferring the link where it can."""
        last = self._last_app
        if (patch is last[0] or (last[3] and type(patch) is type(last[0]) and patch == last[0])) \
                and type(node) is Node and node._pl is self:
            x = node._id
            mark = self._mark
            if not mark[x]:  # FREE: live, a live node after it, and nothing deferred at it
                sites, k = last[1], last[4]
                new = _new_handle(NewNode)
                new._pl, new._first, new._at = self, last[2], len(sites) * k + k - 1
                sites.append(x)
                mark[x] = PENDING
                return new
        new = self._deferred.defer_insert(self, node, patch, False)
        return new if new is not None else _list_append(self, node, patch)


_new_handle = object.__new__  # a handle without an __init__ frame


def _list_prepend(pl: DeferringReplace, node: Node, patch: Any, retarget: bool) -> Node:
    """The list's own `prepend` (see `_list_replace`)."""
    return super(DeferringReplace, pl).prepend(node, patch, retarget=retarget)  # type: ignore[misc]


def _list_append(pl: DeferringReplace, node: Node, patch: Any) -> Node:
    """The list's own `append` (see `_list_replace`)."""
    return super(DeferringReplace, pl).append(node, patch)  # type: ignore[misc]


def _list_replace(pl: DeferringReplace, node: Node, patch: Any, retarget: bool) -> Node:
    """The list's own `replace`, the next after `DeferringReplace`'s in the MRO.

    A function of its own: a method that names ``super`` gets a ``__class__``
    cell, copied into every call's frame, on the hot path too (about 3% of the
    one-node loop).
    """
    return super(DeferringReplace, pl).replace(node, patch, retarget=retarget)  # type: ignore[misc]
