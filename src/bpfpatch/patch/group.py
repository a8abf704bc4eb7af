"""Group inserts: the same patch at many nodes of a `PatchList`, linked with NumPy.

Two users: `replace` with a memoized patch defers its sites, and `_flush`
links them all at once; `replace_rows` patches sites a vectorized pass
selected with `live_ids` / `words`.  Both end in `_link_group`: grow the
columns once, link every site's new nodes before it, move what landed on a
site onto its first new node, and point the new references at anchors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from bpfpatch.errors import PatchError
from bpfpatch.isa import LD_IMM64
from bpfpatch.patch.bulk import _Site, row_words  # the template language of the bulk form
from bpfpatch.patch.node import DELETED, Node
from bpfpatch.patch.order import list_order, note_group_insert
from bpfpatch.patch.prepared import _BLOCKED, _END, _FREE, _NO_ANCHOR, ID_DTYPE, _Prepared

if TYPE_CHECKING:
    from array import array


class GroupInserts:
    """Mixin of `PatchList`: the vectorized half of the list (see the module docstring)."""

    FLUSH_ONE_BY_ONE: int
    _orig: "array"

    def _flush(self) -> None:
        """Link the new nodes of every deferred `replace`, one NumPy pass per patch.

        Gives exactly what the replaces would have given one at a time in the
        order they were made: every site keeps its place and its id, its new
        nodes go right before it, references to it move to the first of them,
        and a reference to "the node after the patch" is taken before any move
        (so it lands on the next site's patch, as a kernel patch would).
        """
        groups = self._pend_groups
        few = sum(len(xs) for _, xs in groups.values()) < self.FLUSH_ONE_BY_ONE
        self._pend_groups, self._last_deferred = {}, (None, None, 0)
        mark = self._pend_mark
        nxt = self._next
        for prep, xs in groups.values():
            if few:
                for x in xs:
                    mark[x] = _FREE if nxt[x] != _END else _BLOCKED  # pending sites are live
                    self._replace_now(x, prep, True)
            else:
                sites = np.frombuffer(xs, dtype=ID_DTYPE).astype(np.int64)  # widened once for the gathers below
                tail = np.frombuffer(nxt, dtype=ID_DTYPE)[sites] == _END
                np.frombuffer(mark, dtype=np.uint8)[sites] = np.where(tail, _BLOCKED, _FREE)
                self._flush_group(prep, sites)

    def _settled_groups(self) -> list[tuple[_Prepared, np.ndarray]]:
        """The deferred replaces as (patch, sites), each site already its patch's last instruction.

        Applies the in-place half of the link (the same writes `_link_group`
        makes first: the site's words and width, no reference, replaced); the
        new nodes before each site are not created.  `linearize` lays these out
        directly, without linking them.
        """
        out = []
        w0, w1 = np.frombuffer(self._w0, dtype=np.uint64), np.frombuffer(self._w1, dtype=np.uint64)
        wide, dirty = np.frombuffer(self._wide, dtype=np.uint8), np.frombuffer(self._dirty, dtype=np.uint8)
        target = np.frombuffer(self._target, dtype=ID_DTYPE)
        try:
            for prep, xs in self._pend_groups.values():
                sites = np.frombuffer(xs, dtype=ID_DTYPE).astype(np.int64)  # a copy: the list may go on growing
                w0[sites], w1[sites], wide[sites] = prep.last_w0, prep.last_w1, prep.last_wide
                target[sites] = _NO_ANCHOR
                dirty[sites[sites < len(dirty)]] = 1
                if prep.any_aux:
                    self._aux_used = True
                out.append((prep, sites))
        finally:
            del w0, w1, wide, dirty, target
        return out

    def _anchors_on(self, nodes: np.ndarray, node_anchor: np.ndarray) -> np.ndarray:
        """The anchor of every node of `nodes` (distinct), created where it has none.

        `node_anchor` is the caller's NumPy view of that column; only the
        anchor -> node column grows, so the view stays valid.
        """
        missing = np.flatnonzero(node_anchor[nodes] == _NO_ANCHOR)
        if len(missing):
            start = len(self._anchor_node)
            self._anchor_node.frombytes(nodes[missing].astype(ID_DTYPE, copy=False).tobytes())
            node_anchor[nodes[missing]] = np.arange(start, start + len(missing))
        return node_anchor[nodes]

    def _flush_group(self, prep: _Prepared, xs: np.ndarray) -> None:
        k = len(prep.w0) - 1
        # The same words at every site: repeated as bytes, the cheapest copy there is.
        self._link_group(
            xs, k, prep.head_w0.tobytes() * len(xs), prep.head_w1.tobytes() * len(xs), prep.head_wide, prep.head_aux,
            prep.w0[k], prep.w1[k], prep.wide[k], [(i, how, v) for i, how, v, _ in prep.plan],
        )

    def _link_group(self, xs: np.ndarray, k: int, head_w0: bytes, head_w1: bytes, head_wide: bytes, head_aux: list,
                    last_w0, last_w1, last_wide: int, plan: list[tuple[int, str, int]],
                    site_target: np.ndarray | None = None) -> None:
        """Replace every node of `xs` at once: `k` new nodes before each (site-major `head_*` words).

        ``plan`` gives the references of the patch's items (item k is the site
        itself): "buf" (an item of the same patch), "after" (the node after
        the site), "site" (`site_target`: where the site's own jump went).
        """
        m = len(xs)
        base = len(self._orig)
        ids = np.arange(base, base + m * k, dtype=np.int64).reshape(m, k)
        note_group_insert(self, xs, base, k)
        minus = b"\xff" * (ID_DTYPE.itemsize * m * k)  # -1 (_NO_ANCHOR, INSERTED) in every new slot
        # Grow every column first: a NumPy view would pin the arrays' size.
        for col in (self._next, self._prev, self._orig, self._node_anchor, self._target):
            col.frombytes(minus)
        self._w0.frombytes(head_w0)
        self._w1.frombytes(head_w1)
        self._wide.extend(head_wide * m)
        if any(a is not None for a in head_aux):
            self._extend_aux(base, head_aux * m)
        self._live += m * k
        # Each site becomes the patch's last instruction (no reference yet, aux kept).
        np.frombuffer(self._w0, dtype=np.uint64)[xs] = last_w0
        np.frombuffer(self._w1, dtype=np.uint64)[xs] = last_w1
        np.frombuffer(self._wide, dtype=np.uint8)[xs] = last_wide
        originals = xs[xs < len(self._dirty)]
        np.frombuffer(self._dirty, dtype=np.uint8)[originals] = 1
        need_after = any(how == "after" for _, how, _ in plan)
        nxt = np.frombuffer(self._next, dtype=ID_DTYPE)
        prev = np.frombuffer(self._prev, dtype=ID_DTYPE)
        target = np.frombuffer(self._target, dtype=ID_DTYPE)
        node_anchor = np.frombuffer(self._node_anchor, dtype=ID_DTYPE)
        try:
            after_anchor = None
            if need_after:  # the node after each site, anchored before anything moves
                after_anchor = self._anchors_on(nxt[xs], node_anchor)
            self_hit = None
            if site_target is not None and any(how == "site" for _, how, _ in plan):
                # A site whose jump lands on itself keeps landing on itself (as
                # `replace` with PatchInsn(target=node.target) would): those get a
                # fresh anchor on the site after the move, the rest keep theirs.
                an = np.frombuffer(self._anchor_node, dtype=ID_DTYPE)[site_target]
                self_hit = an == xs
                orig = np.frombuffer(self._orig, dtype=ID_DTYPE)
                for j in np.flatnonzero(orig[an] == DELETED).tolist():
                    self_hit[j] = self._landing(int(an[j])) == int(xs[j])
                del orig, an
            target[xs] = _NO_ANCHOR
            columns = [ids[:, i] for i in range(k)] + [xs]
            if not k:
                pass  # in-place replacements: nothing to link, nothing moves
            elif k > 1:
                nxt[ids[:, :-1]] = ids[:, 1:]
                prev[ids[:, 1:]] = ids[:, :-1]
            if k:
                p = prev[xs]
                nxt[p] = ids[:, 0]
                prev[ids[:, 0]] = p
                nxt[ids[:, -1]] = xs
                prev[xs] = ids[:, -1]
            # Retarget: what landed on a site lands on its first new node.
            moved = np.flatnonzero(node_anchor[xs] != _NO_ANCHOR) if k else ()
            if len(moved):
                a = node_anchor[xs[moved]]
                anchor_node = np.frombuffer(self._anchor_node, dtype=ID_DTYPE)
                anchor_node[a] = ids[moved, 0]
                del anchor_node
                node_anchor[ids[moved, 0]] = a
                node_anchor[xs[moved]] = _NO_ANCHOR
                if self._subprog_land:  # few entries: look only those up among the sites
                    land = np.fromiter(self._subprog_land, dtype=np.int64)
                    for j in np.flatnonzero(np.isin(xs[moved], land)).tolist():
                        x, first = int(xs[moved[j]]), int(ids[moved[j], 0])
                        self._subprog_land[first] = self._subprog_land.pop(x)
            # References inside the buffer, and to the node after it.
            for i, how, v in plan:
                src = columns[i]
                if how == "after":
                    target[src] = after_anchor
                    continue
                if how == "site":
                    target[src] = site_target
                    if not self_hit.any():
                        continue
                    src, dest = src[self_hit], xs[self_hit]
                else:
                    dest = columns[v]
                target[src] = self._anchors_on(dest, node_anchor)
        finally:
            del nxt, prev, target, node_anchor

    def live_ids(self) -> np.ndarray:
        """Ids of the live nodes in list order, as an array (what iteration visits).

        For vectorized passes: select sites with NumPy on `words`, then patch
        them with `replace_rows`.
        """
        if self._pend_groups:
            self._flush()
        ids = list_order(self)
        orig = np.frombuffer(self._orig, dtype=ID_DTYPE)
        live = orig[ids] != DELETED
        del orig
        return ids[live]

    def words(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(first slot word, ld_imm64 second slot word) of nodes, little-endian ``struct bpf_insn``."""
        if self._pend_groups:
            self._flush()
        return (np.frombuffer(self._w0, dtype=np.uint64)[ids].copy(), np.frombuffer(self._w1, dtype=np.uint64)[ids].copy())

    def orig_indices(self, ids: np.ndarray) -> np.ndarray:
        """``orig_idx`` of nodes (`INSERTED` for new ones)."""
        return np.frombuffer(self._orig, dtype=ID_DTYPE)[ids].astype(np.int64)

    def replace_rows(self, nodes: "np.ndarray | Sequence[Node]", template: Sequence[Any]) -> None:
        """The bulk form on the list: `replace` every node with one template.

        `template` is the language of `bpfpatch.patch.bulk`: `Row`s whose
        fields are ints, ``S.<field>`` (the site's own), per-site arrays or
        functions of the structured site rows, and `SITE` (the site's own
        instruction, keeping its jump target).  Jumps between rows use offsets
        relative to the row (one past the last row: the node after the site);
        ``Row(..., to_site_target=True)`` jumps where the site's jump went.
        The same as ``replace(node, patch)`` (``retarget=True``) at every site,
        in list order, without a Python object per instruction.
        """
        if self._pend_groups:
            self._flush()
        ids = np.asarray([n._id for n in nodes] if not isinstance(nodes, np.ndarray) else nodes, dtype=np.int64)
        if not len(template):
            raise PatchError("replace_rows: empty template (to remove instructions use delete)")
        if not len(ids):
            return
        orig = np.frombuffer(self._orig, dtype=ID_DTYPE)
        bad = (ids <= 0) | (ids >= len(orig))
        if not bad.any():
            bad = orig[ids] == DELETED
        del orig
        if bad.any():
            raise PatchError(f"replace_rows: node {int(ids[np.argmax(bad)])} is not a live instruction of this list")
        if len(ids) * 64 < len(self._orig):  # few sites: sort them, O(m log m) not O(list)
            twice = len(np.unique(ids)) != len(ids)
        else:
            mark = np.zeros(len(self._orig), dtype=bool)
            mark[ids] = True
            twice = int(np.count_nonzero(mark)) != len(ids)
        if twice:
            raise PatchError("replace_rows: a node is listed twice")
        w0 = np.frombuffer(self._w0, dtype=np.uint64)[ids].copy()
        if ((w0 & np.uint64(0xFF)) == LD_IMM64).any() and any(isinstance(row, _Site) for row in template):
            raise PatchError("replace_rows: a SITE row cannot copy an ld_imm64 (give its halves as rows)")
        site_target = np.frombuffer(self._target, dtype=ID_DTYPE)[ids].copy()
        has = site_target >= 0
        if any(isinstance(row, _Site) for row in template) and has.any() and not has.all():
            # SITE rows keep the site's jump target: jumps and the rest go apart.
            self.replace_rows(ids[has], template)
            self.replace_rows(ids[~has], template)
            return
        words, plan = row_words(template, w0, site_refs=bool(has.all()))
        if any(how == "site" for _, how, _ in plan) and not has.all():
            raise PatchError("replace_rows: to_site_target row for a site that is not a jump")
        if any(how == "after" for _, how, _ in plan):
            nxt = np.frombuffer(self._next, dtype=ID_DTYPE)
            past = (nxt[ids] == _END).any()
            del nxt
            if past:
                raise PatchError("replace_rows: a row jumps past the end of the program")
        m, k = len(ids), len(template) - 1
        head = np.empty((m, k), dtype=np.uint64)
        for r in range(k):
            head[:, r] = words[r]
        self._link_group(ids, k, head.tobytes(), bytes(8 * m * k), bytes(k), [None] * k,
                         words[k], 0, 0, plan, site_target)
