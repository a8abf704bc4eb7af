"""Group inserts: the same patch at many nodes of the store, linked with NumPy.

Two users: settling deferred replaces, prepends and appends (`deferred`) and
`PatchList.replace_rows` (sites a vectorized pass selected).  Both end in
`link_group`: grow the columns once, link every site's new nodes before it,
move what landed on a site onto its first new node, and point the new
references at anchors -- what `bpfpatch.patch.apply.replace_now` does at
each site, in one pass.  A deferred insert is the same group with the site
kept as it is (`keep_site`): a prepend before its site, an append before the
node after its site, without the move (`retarget=False`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from bpfpatch.patch.buffer import BufferRef, Prepared, ToItem, ToNext, ToSiteTarget
from bpfpatch.patch.fast.order import OrderCache
from bpfpatch.patch.store import DELETED, ID_DTYPE, NO_ANCHOR, NodeStore, view


class GroupPatch(NamedTuple):
    """`k` new nodes before each of `sites`, each site becoming the patch's last instruction."""

    sites: np.ndarray  # node ids (int64), distinct
    k: int
    head_w0: "bytes | memoryview"  # the new nodes' first slot words, site-major (m * k words)
    head_w1: "bytes | None"  # None: all zero (no ld_imm64 among the new nodes)
    head_wide: bytes  # k bytes, the same at every site
    head_aux: list[Any]  # k values, the same at every site
    last_w0: Any  # the sites' new word: one int, or one per site
    last_w1: int
    last_wide: int
    refs: tuple[BufferRef | ToSiteTarget, ...]  # item k is the site itself
    site_target: np.ndarray | None = None  # the sites' own target anchors (for ToSiteTarget)
    keep_site: bool = False  # an insert: the site keeps its words, target and aux (item k is still the site)
    retarget: bool = True  # what landed on a site moves onto its first new node


class InsertGroup(NamedTuple):
    """Deferred prepends (`before`) or appends of one prepared patch, until the list settles.

    `first` holds the id of the group's first new node once it is linked (-1
    before): the new nodes are made site by site, `len(prep.w0)` each, so the
    handle `prepend` / `append` returned for the j-th site is that plus
    ``j * k + k - 1`` (`bpfpatch.patch.node.NewNode`).
    """

    prep: Prepared
    before: bool
    first: list[int]
    refs: tuple[BufferRef, ...]  # the patch's references, "the node after the patch" as item k (the site)


def insert_group(prep: Prepared, before: bool) -> InsertGroup:
    """A new, empty group of deferred prepends (`before`) or appends of `prep`."""
    k = len(prep.w0)
    refs = tuple(ToItem(r.item, k, r.subprog) if isinstance(r, ToNext) else r for r in prep.refs)
    return InsertGroup(prep, before, [-1], refs)


def of_inserts(g: InsertGroup, at: np.ndarray) -> GroupPatch:
    """The group's patch before every node of `at` (its sites, or for appends the nodes after them)."""
    prep, m = g.prep, len(at)
    return GroupPatch(at, len(prep.w0), prep.w0.tobytes() * m, prep.w1.tobytes() * m, prep.wide, prep.aux,
                      None, 0, 0, g.refs, None, True, g.before)


def of_prepared(prep: Prepared, sites: np.ndarray) -> GroupPatch:
    """A prepared patch at every site of `sites` (its words repeated as bytes: the cheapest copy)."""
    m = len(sites)
    return GroupPatch(sites, len(prep.w0) - 1, prep.head_w0.tobytes() * m, prep.head_w1.tobytes() * m,
                      prep.head_wide, prep.head_aux, prep.last_w0, prep.last_w1, prep.last_wide, prep.refs)


def anchors_on(store: NodeStore, nodes: np.ndarray, node_anchor: np.ndarray) -> np.ndarray:
    """The anchor of every node of `nodes` (distinct), created where it has none.

    `node_anchor` is the caller's NumPy view of that column; only the
    anchor -> node column grows, so the view stays valid.
    """
    missing = np.flatnonzero(node_anchor[nodes] == NO_ANCHOR)
    if len(missing):
        start = len(store.anchor_node)
        store.anchor_node.frombytes(nodes[missing].astype(ID_DTYPE, copy=False).tobytes())
        node_anchor[nodes[missing]] = np.arange(start, start + len(missing))
    return node_anchor[nodes]


def link_group(store: NodeStore, order: OrderCache, g: GroupPatch) -> None:
    """Replace every site of `g` at once (see the module docstring)."""
    xs, k, m = g.sites, g.k, len(g.sites)
    base = len(store.orig)
    ids = np.arange(base, base + m * k, dtype=ID_DTYPE).reshape(m, k)  # 4 bytes a new node
    order.note_group_insert(xs, base, k)
    minus = b"\xff" * (ID_DTYPE.itemsize * m * k)  # -1 (NO_ANCHOR, INSERTED) in every new slot
    # Grow every column first: a NumPy view would pin the arrays' size.
    for col in (store.next, store.prev, store.orig, store.node_anchor, store.target):
        col.frombytes(minus)
    store.w0.frombytes(g.head_w0)
    store.w1.frombytes(g.head_w1 if g.head_w1 is not None else bytes(8 * m * k))
    store.wide.extend(g.head_wide * m)
    if any(a is not None for a in g.head_aux):
        store.extend_aux(base, g.head_aux * m)
    store.live += m * k
    if not g.keep_site:  # each site becomes the patch's last instruction (no reference yet, aux kept)
        view(store.w0, np.uint64)[xs] = g.last_w0
        view(store.w1, np.uint64)[xs] = g.last_w1
        view(store.wide, np.uint8)[xs] = g.last_wide
        view(store.dirty, np.uint8)[xs[xs < len(store.dirty)]] = 1
    nxt, prev, target, node_anchor = view(store.next), view(store.prev), view(store.target), view(store.node_anchor)
    try:
        after_anchor = None
        if any(isinstance(r, ToNext) for r in g.refs):  # the node after each site, anchored before anything moves
            after_anchor = anchors_on(store, nxt[xs], node_anchor)
        self_hit = None
        if g.site_target is not None and any(isinstance(r, ToSiteTarget) for r in g.refs):
            # A site whose jump lands on itself keeps landing on itself (as `replace` with
            # PatchInsn(target=node.target) would): those get a fresh anchor on the site
            # after the move, the rest keep theirs.
            an = view(store.anchor_node)[g.site_target]
            self_hit = an == xs
            orig = view(store.orig)
            for j in np.flatnonzero(orig[an] == DELETED).tolist():
                self_hit[j] = store.landing(int(an[j])) == int(xs[j])
            del orig, an
        if not g.keep_site:
            target[xs] = NO_ANCHOR
        if g.site_target is not None:
            store.call_index = None  # a copied site reference may be a call: rebuild the delete check's index
        columns = [ids[:, i] for i in range(k)] + [xs]
        if k > 1:
            nxt[ids[:, :-1]] = ids[:, 1:]
            prev[ids[:, 1:]] = ids[:, :-1]
        if k:
            p = prev[xs]
            nxt[p] = ids[:, 0]
            prev[ids[:, 0]] = p
            nxt[ids[:, -1]] = xs
            prev[xs] = ids[:, -1]
            if g.retarget:
                _retarget(store, xs, ids[:, 0], node_anchor)
        for ref in g.refs:  # references inside the buffer, to the node after it, to the site's target
            src = columns[ref.item]
            if isinstance(ref, ToNext):
                target[src] = after_anchor
                continue
            if isinstance(ref, ToSiteTarget):
                target[src] = g.site_target
                if not self_hit.any():
                    continue
                src, dest = src[self_hit], xs[self_hit]
            else:
                dest = columns[ref.dest]
            target[src] = anchors_on(store, dest, node_anchor)
    finally:
        del nxt, prev, target, node_anchor


def _retarget(store: NodeStore, xs: np.ndarray, first: np.ndarray, node_anchor: np.ndarray) -> None:
    """What landed on each site lands on its first new node (a subprogram start too, also one
    that lands there through deleted nodes: the new nodes go after those)."""
    if store.subprog_land:  # few entries: look only those up among the sites
        land = np.fromiter(store.subprog_land, dtype=np.int64)
        for j in np.flatnonzero(np.isin(xs, land)).tolist():
            store.subprog_land[int(first[j])] = store.subprog_land.pop(int(xs[j]))
    moved = np.flatnonzero(node_anchor[xs] != NO_ANCHOR)
    if not len(moved):
        return
    a = node_anchor[xs[moved]]
    anchor_node = view(store.anchor_node)
    anchor_node[a] = first[moved]
    del anchor_node
    node_anchor[first[moved]] = a
    node_anchor[xs[moved]] = NO_ANCHOR


__all__ = ["GroupPatch", "InsertGroup", "ToItem", "anchors_on", "insert_group", "link_group", "of_inserts", "of_prepared"]
