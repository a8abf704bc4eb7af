"""The order of a patch list as an array, kept up to date across group inserts.

`OrderCache.order` gives every node id after the dummy head, in list order
(deleted nodes included: they stay linked).  Walking the links is the one
step of `linearize` that is not vectorized, so the order is cached, and group
inserts (new nodes before each of many sites) are recorded against the
cache and applied together, in one NumPy pass, the next time the order is
asked for.  Any other insertion leaves the cache stale (its node count no
longer matches) and the next request walks the list again.  Each insert
costs O(its size) and each request O(list), so alternating inserts and
requests never turns quadratic.
"""

from __future__ import annotations

import numpy as np

from bpfpatch.patch.store import NodeStore


class OrderCache:
    """The cached order of one store: `seq` covers node ids below `covered`, `pending` group inserts come on top."""

    def __init__(self, store: NodeStore, enabled: bool = True) -> None:
        self.store = store
        self.enabled = enabled
        self.seq: np.ndarray | None = None
        self.covered = 0
        self.pending: list[tuple[np.ndarray, int, int]] = []  # (sites, first new id, nodes per site)
        self.pending_nodes = 0

    def valid(self) -> bool:
        """Does the cache (with its pending inserts) describe the store as it is?"""
        return self.seq is not None and self.covered + self.pending_nodes == len(self.store.orig)

    def order(self) -> np.ndarray:
        """Every node id after the dummy head, in list order (deleted nodes included); read-only."""
        if not self.enabled:
            return self.store.walk()
        if not self.valid():
            self.seq = self.store.walk()
            self.seq.flags.writeable = False
            self.covered, self.pending, self.pending_nodes = len(self.store.orig), [], 0
            return self.seq
        if self.pending:
            self.seq = _apply(self.seq, self.covered, self.pending)
            self.seq.flags.writeable = False
            self.covered, self.pending, self.pending_nodes = len(self.store.orig), [], 0
        return self.seq

    def cached(self) -> np.ndarray | None:
        """The cached order if it is valid (for `NodeStore.check`), without walking."""
        return self.order() if self.enabled and self.valid() else None

    def note_group_insert(self, sites: np.ndarray, first_id: int, k: int) -> None:
        """Record that `k` new nodes (ids from `first_id`, site-major) go right before each site.

        Called before the columns grow.  Without a valid order, a large group
        (a sixteenth of the list or more: its own work pays for the walk)
        walks the list first, while it has the fewest runs; a small one
        leaves the order stale, so many small inserts never walk once each.
        """
        if not self.enabled or not len(sites) or not k:
            return
        if not self.valid() and len(sites) * 16 >= len(self.store.orig):
            self.order()
        if not self.valid() or int(sites.max()) >= self.covered:
            self.seq = None  # a site the cached order does not hold yet: walk next time
            return
        self.pending.append((sites.copy(), first_id, k))
        self.pending_nodes += len(sites) * k


def _apply(seq: np.ndarray, covered: int, groups: list[tuple[np.ndarray, int, int]]) -> np.ndarray:
    """`seq` with every recorded group insert applied (in recording order at a shared site)."""
    xs = np.concatenate([g[0] for g in groups]) if len(groups) > 1 else groups[0][0]
    per_site = np.concatenate([np.full(len(g[0]), g[2], dtype=np.int64) for g in groups])
    first = np.concatenate([g[1] + g[2] * np.arange(len(g[0]), dtype=np.int64) for g in groups])
    mark = np.zeros(covered, dtype=bool)
    mark[xs] = True
    if int(np.count_nonzero(mark)) == len(xs):
        # Distinct sites (the usual case): their positions in order by one mask gather,
        # and which site sits at each (as given, when the sites came in list order).
        pos = np.flatnonzero(mark[seq])
        at_pos = seq[pos]
        if not np.array_equal(at_pos, xs):
            row_of = np.empty(covered, dtype=np.int64)
            row_of[xs] = np.arange(len(xs))
            rows = row_of[at_pos]
            per_site, first = per_site[rows], first[rows]
    else:  # a site patched in two groups: sort by position, earlier group first
        where = np.empty(covered, dtype=np.int64)
        where[seq] = np.arange(len(seq))
        group = np.concatenate([np.full(len(g[0]), i, dtype=np.int64) for i, g in enumerate(groups)])
        pos = where[xs]
        by_pos = np.lexsort((group, pos))
        pos, per_site, first = pos[by_pos], per_site[by_pos], first[by_pos]
    del mark
    k = groups[0][2]
    if all(g[2] == k for g in groups):  # one block size: broadcasting, no ragged repeats
        step = np.arange(k, dtype=np.int64)
        at = ((pos + k * np.arange(len(pos), dtype=np.int64))[:, None] + step).ravel()
        values = (first[:, None] + step).ravel()
    else:
        before = np.cumsum(per_site) - per_site  # new nodes placed before this site's
        offset = np.arange(int(per_site.sum()), dtype=np.int64) - np.repeat(before, per_site)
        at = np.repeat(pos + before, per_site) + offset
        values = np.repeat(first, per_site) + offset
    new = np.empty(len(seq) + len(at), dtype=np.int64)
    new[at] = values
    keep = np.ones(len(new), dtype=bool)
    keep[at] = False
    new[keep] = seq  # the old entries keep their relative order
    return new
