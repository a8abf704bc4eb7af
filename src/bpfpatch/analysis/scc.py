"""Loops as the 6.18 verifier sees them: strongly connected components of the instruction graph, and
their visits (the kernel's ``compute_scc``, ``bpf_scc_visit`` and state-graph backedges).

Since Linux 6.17 (commit c9e31900b54c, "bpf: propagate read/precision marks over state graph
backedges", on 96c6aa4c63af, "bpf: compute SCCs in program control flow graph") the verifier
numbers the SCCs of each subprogram's instruction graph (a call falls through, an exit has no
successor).  A checkpoint whose instruction lies in an SCC *enters* a visit of that loop; a visit
is keyed by a call chain, the call sites of the frames above the first frame standing in an SCC
plus that SCC's number.  A path pruned against a checkpoint of a loop (``RANGE_WITHIN``: may_goto,
iterators, or a checkpoint whose visit has backedges) is kept as a *backedge*.  While a visit has
backedges, its finished checkpoints compare imprecise scalars too (``incomplete_read_marks``): the
precision they will need is not known yet.  When the visit's entry checkpoint has no branches left,
the precision of each backedge's equal state is propagated into the backedge's chain until nothing
changes (``propagate_backedges``), and the visit is empty again.

    >>> ids = scc_ids(3, lambda i: [[1], [2, 0], []][i])
    >>> ids[0] == ids[1] != 0, ids[2]
    (True, 0)
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: ``MAX_BACKEDGE_ITERS``: rounds of propagation before every scalar of the backedges is made precise.
MAX_BACKEDGE_ITERS = 64


def scc_ids(n: int, successors: Callable[[int], Sequence[int]]) -> "array[int]":
    """Per instruction, the number (1, 2, ...) of its strongly connected component, 0 when it is in none.

    A component counts when it has two or more instructions or one that jumps to itself (the
    kernel's rule).  Tarjan's algorithm, iterative; successors outside ``0..n-1`` are ignored.
    """
    # machine-integer columns, not lists of int objects: the walk of a chain is as deep as the chain
    index = array("q", bytes(8 * n))  # preorder number + 1; 0: not visited
    low = array("q", bytes(8 * n))
    pos = array("q", bytes(8 * n))  # per instruction on the walk: its next successor to look at
    on_stack = bytearray(n)
    stack = array("q")
    work = array("q")  # the walk's path: instructions
    out = array("i", bytes(4 * n))  # an int32 an instruction, not a list of int objects
    counter = 0
    next_id = 1
    for root in range(n):
        if index[root]:
            continue
        counter += 1
        index[root] = low[root] = counter
        stack.append(root)
        on_stack[root] = 1
        work.append(root)
        while work:
            v = work[-1]
            succ = successors(v)
            k = pos[v]
            if k < len(succ):
                pos[v] = k + 1
                w = succ[k]
                if w < 0 or w >= n:
                    continue
                if not index[w]:
                    counter += 1
                    index[w] = low[w] = counter
                    stack.append(w)
                    on_stack[w] = 1
                    work.append(w)
                elif on_stack[w] and index[w] < low[v]:
                    low[v] = index[w]
                continue
            work.pop()
            if work:
                u = work[-1]
                if low[v] < low[u]:
                    low[u] = low[v]
            if low[v] != index[v]:
                continue
            members = []
            while True:
                w = stack.pop()
                on_stack[w] = 0
                members.append(w)
                if w == v:
                    break
            if len(members) > 1 or v in succ:
                for w in members:
                    out[w] = next_id
                next_id += 1
    return out


@dataclass
class SccVisit:
    """``bpf_scc_visit``: the checkpoint that entered a loop on the current path, and the paths
    pruned inside it since (each with the explored state it was found equal to)."""

    entry: Any = None
    backedges: list[tuple[Any, Any]] = field(default_factory=list)


class SccVisits:
    """The visits of one analysis, keyed by call chain (``compute_scc_callchain``)."""

    def __init__(self, ids: Sequence[int]) -> None:
        self.ids = ids
        self.any = any(ids)
        self.visits: dict[tuple[int, ...], SccVisit] = {}
        self.pending = 0  # backedges waiting in all visits: none, and no state's marks are incomplete
        self.entries: dict[int, SccVisit] = {}  # id(entry checkpoint) -> its visit

    def callchain(self, idx: int, frames: list[Any]) -> tuple[int, ...] | None:
        """The call sites of the frames above the first one standing in an SCC, then that SCC's number.

        A frame stands at the call it made (``frame_insn_idx``), the last one at `idx`; None when no
        frame is in an SCC.
        """
        ids = self.ids
        last = len(frames) - 1
        for i in range(last + 1):
            at = idx if i == last else frames[i + 1].callsite
            scc = ids[at] if 0 <= at < len(ids) else 0
            if scc:
                return tuple(frames[j + 1].callsite for j in range(i)) + (scc,)
        return None

    def enter(self, idx: int, checkpoint: Any) -> None:
        """``maybe_enter_scc``: a new checkpoint at `idx` in a loop with no entry on this path becomes its entry."""
        if not self.any:
            return
        chain = self.callchain(idx, checkpoint.frames)
        if chain is None:
            return
        visit = self.visits.get(chain)
        if visit is None:
            visit = self.visits[chain] = SccVisit()
        if visit.entry is None:
            visit.entry = checkpoint
            self.entries[id(checkpoint)] = visit

    def incomplete(self, idx: int, old: Any) -> bool:
        """``incomplete_read_marks``: the explored state `old` at `idx` is in a visit that has backedges."""
        if not self.pending:
            return False
        chain = self.callchain(idx, old.frames)
        if chain is None:
            return False
        visit = self.visits.get(chain)
        return visit is not None and bool(visit.backedges)

    def add_backedge(self, idx: int, old: Any, cur: Any) -> None:
        """``add_scc_backedge``: `cur` was pruned against `old` (at `idx`) inside a loop."""
        chain = self.callchain(idx, old.frames)
        visit = self.visits.get(chain) if chain is not None else None
        if visit is None:
            return  # the kernel reports a verifier bug here; our checkpoints in loops always have a visit
        visit.backedges.append((cur, old))
        self.pending += 1

    def exit(self, state: Any) -> SccVisit | None:
        """``maybe_exit_scc``: `state` has no branches left; if it entered a visit, the visit ends and is returned
        (its backedges, still to be propagated, are taken out of the count)."""
        visit = self.entries.pop(id(state), None) if self.entries else None
        if visit is None or visit.entry is not state:
            return None
        visit.entry = None
        self.pending -= len(visit.backedges)
        return visit


__all__ = ["MAX_BACKEDGE_ITERS", "SccVisit", "SccVisits", "scc_ids"]
