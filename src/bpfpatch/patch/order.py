"""The order of a patch list as an array, kept up to date across group inserts.

`list_order` gives every node id after the dummy head, in list order
(deleted nodes included: they stay linked).  Walking the links is the one
step of `linearize` that is not vectorized, so the order is cached, and group
inserts (`PatchList._link_group`: new nodes before each of many sites) are
recorded against the cache and applied together, in one NumPy pass, the next
time the order is asked for.  Any other insertion leaves the cache stale
(its node count no longer matches) and the next request walks the list again.
Each insert costs O(its size) and each request O(list), so alternating
inserts and requests never turns quadratic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bpfpatch.patch.prepared import ID_DTYPE

if TYPE_CHECKING:
    from bpfpatch.patch.patchlist import PatchList


class OrderCache:
    """`seq` covers node ids below `covered`; `pending` group inserts come on top."""

    __slots__ = ("seq", "covered", "pending", "pending_nodes")

    def __init__(self, seq: np.ndarray, covered: int) -> None:
        self.seq = seq
        self.covered = covered
        self.pending: list[tuple[np.ndarray, int, int]] = []  # (sites, first new id, nodes per site)
        self.pending_nodes = 0


def _valid(pl: "PatchList") -> OrderCache | None:
    c = pl._order_cache
    return c if c is not None and c.covered + c.pending_nodes == len(pl._orig) else None


def list_order(pl: "PatchList") -> np.ndarray:
    """Every node id after the dummy head, in list order (deleted nodes included)."""
    c = _valid(pl)
    if c is None:
        seq = walk_order(pl)
        seq.flags.writeable = False
        pl._order_cache = OrderCache(seq, len(pl._orig))
        return seq
    if c.pending:
        c.seq = _apply(c.seq, c.covered, c.pending)
        c.seq.flags.writeable = False
        c.covered, c.pending, c.pending_nodes = len(pl._orig), [], 0
    return c.seq


def note_group_insert(pl: "PatchList", sites: np.ndarray, first_id: int, k: int) -> None:
    """Record that `k` new nodes (ids from `first_id`, site-major) go right before each site.

    Called before the columns grow.  Without a valid order, a large group
    (a sixteenth of the list or more: its own work pays for the walk) walks
    the list first, while it has the fewest runs; a small one leaves the
    order stale, so many small inserts never walk once each.
    """
    if not len(sites) or not k:
        return
    if _valid(pl) is None and len(sites) * 16 >= len(pl._orig):
        list_order(pl)
    c = _valid(pl)
    if c is None or int(sites.max()) >= c.covered:
        pl._order_cache = None  # a site the cached order does not hold yet: walk next time
        return
    c.pending.append((sites.copy(), first_id, k))
    c.pending_nodes += len(sites) * k


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


def walk_order(pl: "PatchList") -> np.ndarray:
    """Walk the links: one Python step per run of consecutive ids, NumPy inside runs.

    The list is mostly runs of consecutive ids (original code, and every patch
    buffer, are created in order), so only the runs are walked in Python.
    """
    nxt = np.frombuffer(pl._next, dtype=ID_DTYPE)
    n = len(nxt)
    ids = np.arange(n, dtype=np.int64)
    cont = nxt == ids + 1  # node i links to i + 1: same run
    head = np.ones(n, dtype=bool)
    head[1:] = ~cont[:-1]
    heads = np.flatnonzero(head)
    tails = np.empty_like(heads)
    tails[:-1] = heads[1:] - 1
    tails[-1] = n - 1
    run_of = np.cumsum(head) - 1
    after = nxt[tails]
    succ = np.where(after >= 0, run_of[np.maximum(after, 0)], -1).tolist()
    # Walk the runs in list order (one step per run, not per node).
    order_runs = []
    push = order_runs.append
    r = int(run_of[0])
    while r != -1:
        push(r)
        r = succ[r]
    runs = np.array(order_runs, dtype=np.int64)
    lengths = tails[runs] - heads[runs] + 1
    starts_in_order = np.cumsum(lengths) - lengths
    seq = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(starts_in_order, lengths) + np.repeat(heads[runs], lengths)
    return seq[1:]  # node 0 is the dummy head
