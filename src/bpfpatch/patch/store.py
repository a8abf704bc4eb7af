"""The node store at the bottom of the patch list: columns by node id, and their primitives.

Every node of a `PatchList` is a row of parallel columns (node 0 is the
dummy head, 1..n the original instructions, then inserted nodes in the order
they are created), so building the list for a large program creates no
per-instruction object:

* ``next`` / ``prev`` -- the doubly linked list order (`END` past the last);
* ``w0`` / ``w1``     -- the instruction as little-endian slot words (``w1``:
  the second slot of an ld_imm64), ``wide`` (1 for ld_imm64), ``dirty`` (an
  original whose instruction was replaced);
* ``orig``            -- the original slot index, `INSERTED` or `DELETED`;
* ``target``          -- the anchor a jump, pseudo call or pseudo func goes to (`NO_ANCHOR`);
* ``anchor_node`` / ``node_anchor`` -- anchors: a jump stores the anchor of
  the node it targets, and moving an anchor from one node to another
  retargets every reference to it at once (one to one with their nodes);
* ``aux``             -- aux data by node id, only as long as its last value.

Integer columns are ``array(ID_TYPECODE)``: 4 bytes a node.  `check` verifies
every invariant the list and its fast paths rely on.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from bpfpatch.errors import PatchError
from bpfpatch.isa import LD_IMM64, Insn, branch_offsets, insn_of_words, insn_starts, insn_words, subprog_ref_mask
from bpfpatch.program import Program

#: ``orig_idx`` of a node that a patch inserted (the seed's -1).
INSERTED = -1
#: ``orig_idx`` of a node that was deleted (the seed's -2).
DELETED = -2
#: ``next`` of the last node (and ``prev`` of a node not linked yet).
END = -1
#: ``target`` of a node without a reference, ``node_anchor`` of a node without an anchor.
NO_ANCHOR = -1

# Node ids, anchors and original slot indices are 32-bit: a program has far fewer than
# 2**31 nodes, and half-width columns halve the memory traffic of growing and gathering
# them.  One typecode for the array('i') columns, the NumPy dtype derived from it.
ID_TYPECODE = "i"
ID_DTYPE = np.dtype(ID_TYPECODE)

# Decoded instructions by slot word: programs repeat instructions, and an `Insn`
# is immutable, so `node.insn` usually costs one dict lookup (single-slot ones only).
INSN_CACHE: dict[int, Insn] = {}
INSN_CACHE_MAX = 1 << 16

#: Ready-made runs of -1 (INSERTED, no anchor, no target) for new nodes.
MINUS_ONES = [array(ID_TYPECODE, [-1] * k) for k in range(17)]


def minus_ones(k: int) -> array:
    """An id column of `k` times -1."""
    return MINUS_ONES[k] if k < len(MINUS_ONES) else array(ID_TYPECODE, [-1] * k)


def id_column(values: np.ndarray | Iterable[int]) -> array:
    """Integers as an id column (from NumPy: one memory copy, no Python ints)."""
    out = array(ID_TYPECODE)
    out.frombytes(np.ascontiguousarray(values, dtype=ID_DTYPE).tobytes())
    return out


def view(column: array, dtype: np.dtype | type = ID_DTYPE) -> np.ndarray:
    """A NumPy view of a column (release it before the column grows)."""
    return np.frombuffer(column, dtype=dtype)


class AnchorSet:
    """A set of anchors as a byte each (the called anchors: a set of ints was 60 bytes a call).

    ``a in s``, `add`, `discard`, ``len``, iteration in anchor order, and
    `without` (the anchors not among some others, as a small set).
    """

    __slots__ = ("mask", "count")

    def __init__(self, anchors: np.ndarray, size: int) -> None:
        mask = np.zeros(size, dtype=np.uint8)
        mask[anchors] = 1
        self.mask = bytearray(mask.tobytes())
        self.count = int(mask.sum())

    def __contains__(self, a: int) -> bool:
        return 0 <= a < len(self.mask) and self.mask[a] == 1

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[int]:
        return iter(self.as_array().tolist())

    def as_array(self) -> np.ndarray:
        """The anchors in order, as an int64 array (no int object each)."""
        return np.flatnonzero(np.frombuffer(self.mask, dtype=np.uint8)) if self.mask else np.zeros(0, dtype=np.int64)

    def add(self, a: int) -> None:
        """Add anchor `a` (the mask grows as anchors are made)."""
        if a >= len(self.mask):
            self.mask.extend(bytes(a + 1 - len(self.mask)))
        if not self.mask[a]:
            self.mask[a] = 1
            self.count += 1

    def discard(self, a: int) -> None:
        """Remove anchor `a` if present."""
        if a in self:
            self.mask[a] = 0
            self.count -= 1

    def without(self, *others: Iterable[int]) -> set[int]:
        """The anchors of the set not in any of `others`."""
        mask = np.frombuffer(self.mask, dtype=np.uint8).copy() if self.mask else np.zeros(0, dtype=np.uint8)
        for other in others:
            drop = np.fromiter(other, dtype=np.int64)
            mask[drop[(drop >= 0) & (drop < len(mask))]] = 0
        return set(np.flatnonzero(mask).tolist())


class LandMap:
    """Node id -> the subprogram anchor landing on it, as an id column (-1: none), 4 bytes a node up
    to the largest id it holds (a dict was a table entry and two ints a subprogram: 67 bytes an
    instruction on a chain of one-call subprograms).

    The dict operations the store uses: ``get``, ``in``, ``[nid] = a``, ``del``, ``pop``, ``len``,
    iteration over the node ids, `values` and `items` (in node id order).
    """

    __slots__ = ("col", "count")

    def __init__(self, nodes: Sequence[int], anchors: Sequence[int]) -> None:
        """The map of distinct node ids `nodes` to `anchors`."""
        ids = np.asarray(nodes, dtype=np.int64)
        col = np.full(int(ids.max()) + 1 if len(ids) else 0, -1, dtype=ID_DTYPE)
        col[ids] = np.asarray(anchors, dtype=ID_DTYPE)
        self.col = id_column(col)
        self.count = int(np.count_nonzero(col >= 0))

    def get(self, nid: int, default: Any = None) -> Any:
        """The anchor landing on `nid`, or `default`."""
        col = self.col
        a = col[nid] if 0 <= nid < len(col) else -1
        return default if a < 0 else a

    def __contains__(self, nid: object) -> bool:
        col = self.col
        return isinstance(nid, (int, np.integer)) and 0 <= nid < len(col) and col[nid] >= 0

    def __setitem__(self, nid: int, a: int) -> None:
        col = self.col
        if nid >= len(col):
            col.extend(minus_ones(nid + 1 - len(col)))
        if col[nid] < 0:
            self.count += 1
        col[nid] = a

    def pop(self, nid: int) -> int:
        """Remove `nid` and return its anchor (KeyError if it has none)."""
        a = self.get(nid)
        if a is None:
            raise KeyError(nid)
        self.col[nid] = -1
        self.count -= 1
        return a

    def __delitem__(self, nid: int) -> None:
        self.pop(nid)

    def __len__(self) -> int:
        return self.count

    def _keys(self) -> np.ndarray:
        return np.flatnonzero(view(self.col) >= 0) if len(self.col) else np.zeros(0, dtype=np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(self._keys().tolist())

    def values(self) -> list[int]:
        """The anchors, in node id order."""
        col = view(self.col) if len(self.col) else np.zeros(0, dtype=ID_DTYPE)
        return col[col >= 0].tolist()

    def items(self) -> list[tuple[int, int]]:
        """(node id, anchor) pairs, in node id order."""
        keys = self._keys()
        return list(zip(keys.tolist(), view(self.col)[keys].tolist())) if len(keys) else []


class CallIndex:
    """Called anchor -> the node ids whose reference points at it (the delete check's reverse index).

    Two sorted integer columns, 16 bytes a call site (a dict of lists was a
    list, an int and a table entry each: 100 bytes an instruction on a chain of
    subprograms), and a dict of the references made since (`add`).
    """

    __slots__ = ("anchors", "sources", "added")

    def __init__(self, anchors: np.ndarray, sources: np.ndarray) -> None:
        order = np.argsort(anchors, kind="stable")
        self.anchors = array("q", anchors[order].astype(np.int64).tobytes())
        self.sources = array("q", sources[order].astype(np.int64).tobytes())
        self.added: dict[int, list[int]] = {}

    def add(self, anchor: int, nid: int) -> None:
        """Node `nid` now references `anchor`."""
        self.added.setdefault(anchor, []).append(nid)

    def sites(self, anchor: int) -> list[int]:
        """The node ids that referenced `anchor` when the index was built or since (some may have moved on)."""
        lo = bisect_left(self.anchors, anchor)
        hi = bisect_right(self.anchors, anchor, lo)
        return self.sources[lo:hi].tolist() + self.added.get(anchor, [])


class NodeStore:
    """The columns of one patch list and the primitives every operation is made of."""

    def __init__(self, program: Program) -> None:
        slots = program.slots
        starts = np.flatnonzero(insn_starts(slots))
        n = len(starts)
        self.program = program
        self.n = n  # original instructions: ids 1..n
        self.base_slot = starts  # original instruction index -> slot index
        self.slot_to_id = np.full(len(slots) + 1, -1, dtype=np.int64)
        self.slot_to_id[starts] = np.arange(1, n + 1)
        self.slot_to_id[len(slots)] = END
        total = n + 1
        ramp = np.arange(-1, total + 1, dtype=ID_DTYPE)  # -1, 0, 1, ..., total
        self.next = id_column(ramp[2:])
        self.next[total - 1] = END
        self.prev = id_column(ramp[:total])
        words = slots.view(np.uint64)
        self.w0 = array("Q", [0])
        self.w0.frombytes(words[starts].tobytes())
        second = np.zeros(n, dtype=np.uint64)
        wide_first = np.flatnonzero(slots["code"][starts] == LD_IMM64)
        second[wide_first] = words[starts[wide_first] + 1]
        self.w1 = array("Q", [0])
        self.w1.frombytes(second.tobytes())
        self.wide = bytearray(total)
        self.wide[1:] = (slots["code"][starts] == LD_IMM64).astype(np.uint8).tobytes()
        self.dirty = bytearray(total)  # originals only
        self.orig = id_column(np.concatenate(([INSERTED], starts)))
        if program.aux is None:
            self.aux: list[Any] = []
        elif n == len(slots):
            self.aux = [None, *program.aux]
        else:
            self.aux = [None] + [program.aux[s] for s in starts.tolist()]
        self.aux_used = program.aux is not None
        self.anchor_node = id_column(ramp[1 : total + 1])  # originally anchor k is node k
        self.node_anchor = id_column(ramp[1 : total + 1])
        self.live = n
        self.target = id_column(self._original_targets(program, total))
        self._check_records(program)
        # Subprogram starts, func_info and line_info ride on anchors.
        self.subprog_anchors = array(ID_TYPECODE, self.anchors_of_slots(program.subprogs, "subprogram start"))
        # node id -> subprogram anchor landing on it (for the delete check).
        self.subprog_land = LandMap(self.subprog_anchors, self.subprog_anchors)
        # The delete check's reverse index: called anchor -> node ids pointing at it (built on
        # first use, kept by `point`), and the called anchors that are no subprogram's (rare).
        self.call_index: CallIndex | None = None
        self.odd_called: set[int] | None = None

    def _original_targets(self, program: Program, total: int) -> np.ndarray:
        """The target column of the original instructions; fills ``called_anchors``."""
        slots = program.slots
        target = np.full(total, NO_ANCHOR, dtype=ID_DTYPE)
        self.called_anchors = AnchorSet(np.zeros(0, dtype=np.int64), total + 1)
        idx, rel = branch_offsets(slots, program.external)
        if not len(idx):
            return target
        dest = idx + rel + 1
        outside = (dest < 0) | (dest >= len(slots))
        if outside.any():
            raise PatchError(f"instruction at slot {int(idx[np.argmax(outside)])}: jump outside the program")
        dest_ids = self.slot_to_id[dest]
        if (dest_ids < 0).any():
            bad = int(idx[np.argmax(dest_ids < 0)])
            raise PatchError(f"instruction at slot {bad}: jump into the middle of an ld_imm64")
        target[self.slot_to_id[idx]] = dest_ids
        calls = subprog_ref_mask(slots, idx)
        self.called_anchors = AnchorSet(dest_ids[calls], total + 1)
        return target

    def _check_records(self, program: Program) -> None:
        """func_info / line_info must name instructions of the program (probe before anything else)."""
        nslots = len(program.slots)
        for what, records in (("func_info", program.func_info), ("line_info", program.line_info)):
            for r in records or ():
                if not 0 <= r.insn_off < nslots or self.slot_to_id[r.insn_off] < 0:
                    raise PatchError(f"{what} record at slot {r.insn_off} is not an instruction of the program")

    def anchors_of_slots(self, slot_list: Iterable[int], what: str) -> list[int]:
        """The original anchors of instructions at `slot_list`, refusing slots that start none."""
        out = []
        nslots = len(self.program.slots)
        for s in slot_list:
            nid = int(self.slot_to_id[s]) if 0 <= s <= nslots else -1
            if nid < 0:
                raise PatchError(f"{what} at slot {s} is not at an instruction")
            out.append(nid)
        return out

    # --- reading ----------------------------------------------------------------------

    def insn(self, nid: int) -> Insn:
        """The node's instruction."""
        w0 = self.w0[nid]
        insn = INSN_CACHE.get(w0)
        if insn is None:
            insn = insn_of_words(w0, self.w1[nid])
            if insn[0] != LD_IMM64 and len(INSN_CACHE) < INSN_CACHE_MAX:
                INSN_CACHE[w0] = insn
        return insn

    def landing(self, nid: int) -> int:
        """The first live node at or after `nid` (where references to it land), or `END`."""
        nxt, orig = self.next, self.orig
        while nid != END and orig[nid] == DELETED:
            nid = nxt[nid]
        return nid

    def has_after(self, nid: int) -> bool:
        """Is there a live node after `nid` (where "the node after a patch" can land)?"""
        nxt = self.next[nid]
        return nxt != END and (self.orig[nxt] != DELETED or self.landing(nxt) != END)

    def next_live(self, nid: int) -> int:
        """The next live node after `nid`, or `END`."""
        return self.landing(self.next[nid])

    def before_deleted_run(self, x: int) -> int:
        """The first of the deleted nodes right before `x` (or `x`).

        References to those deleted nodes land on `x`; inserting before them
        keeps it so when jumps must not move onto the patch (retarget=False).
        """
        p = self.prev[x]
        while p > 0 and self.orig[p] == DELETED:
            x, p = p, self.prev[p]
        return x

    def walk(self) -> np.ndarray:
        """Every node id after the head, in list order (deleted ones included), by following ``next``.

        One Python step per run of consecutive ids, NumPy inside runs: the list
        is mostly such runs (original code, and every patch buffer, are
        created in order).
        """
        nxt = view(self.next)
        n = len(nxt)
        ids = np.arange(n, dtype=np.int64)
        head = np.ones(n, dtype=bool)
        head[1:] = nxt[:-1] != ids[1:]  # node i - 1 does not link to i: a run starts at i
        heads = np.flatnonzero(head)
        tails = np.empty_like(heads)
        tails[:-1] = heads[1:] - 1
        tails[-1] = n - 1
        run_of = np.cumsum(head) - 1
        after = nxt[tails]
        succ = np.where(after >= 0, run_of[np.maximum(after, 0)], -1).tolist()
        del nxt
        order_runs = []
        push = order_runs.append
        r = int(run_of[0])
        steps = 0
        while r != -1 and steps <= len(succ):  # at most one visit per run (a cycle is a broken store)
            push(r)
            r = succ[r]
            steps += 1
        runs = np.array(order_runs, dtype=np.int64)
        lengths = tails[runs] - heads[runs] + 1
        starts_in_order = np.cumsum(lengths) - lengths
        seq = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(starts_in_order, lengths) + np.repeat(heads[runs], lengths)
        return seq[1:]  # node 0 is the dummy head

    # --- writing ----------------------------------------------------------------------

    def set_insn(self, nid: int, insn: Insn) -> None:
        """Give a node a new instruction (its target reference is the caller's business)."""
        w0, w1 = insn_words(insn)
        self.set_words(nid, w0, w1, insn[0] == LD_IMM64)

    def set_words(self, nid: int, w0: int, w1: int, wide: int) -> None:
        """Give a node new slot words (its target reference is the caller's business)."""
        self.w0[nid] = w0
        self.w1[nid] = w1
        self.wide[nid] = wide
        if nid < len(self.dirty):
            self.dirty[nid] = 1

    def set_aux(self, nid: int, value: Any) -> None:
        """Set a node's aux data."""
        aux = self.aux
        if nid >= len(aux):
            if value is None:
                return
            aux.extend([None] * (nid + 1 - len(aux)))
        aux[nid] = value
        self.aux_used = True

    def set_aux_many(self, nids: Sequence[int], values: Iterable[Any]) -> None:
        """`set_aux` of each node of `nids` (any order) to its value of `values`: the column grown once."""
        aux = self.aux
        top = max(nids, default=-1) + 1
        if len(aux) < top:
            aux.extend([None] * (top - len(aux)))
        for nid, value in zip(nids, values):
            aux[nid] = value
        self.aux_used = self.aux_used or top > 0

    def extend_aux(self, base: int, values: list[Any]) -> None:
        """Aux data of new nodes `base`, `base` + 1, ... (call it only when some is not None)."""
        aux = self.aux
        if len(aux) < base:
            aux.extend([None] * (base - len(aux)))
        aux.extend(values)
        self.aux_used = True

    def new_chain(self, w0: array, w1: array, wide: bytes, aux: list[Any] | None) -> int:
        """Create ``len(w0)`` new nodes linked one to the next; return the first id.

        The first node's ``prev`` and the last one's ``next`` are the caller's
        to link.  New nodes are `INSERTED`, without anchor or target.
        """
        k = len(w0)
        base = len(self.orig)
        minus = minus_ones(k)
        self.next.extend(minus)
        self.prev.extend(minus)
        nxt, prev = self.next, self.prev
        for i in range(base, base + k - 1):
            nxt[i] = i + 1
            prev[i + 1] = i
        self.w0.extend(w0)
        self.w1.extend(w1)
        self.wide.extend(wide)
        if aux is not None:
            self.extend_aux(base, aux)
        self.orig.extend(minus)
        self.node_anchor.extend(minus)
        self.target.extend(minus)
        return base

    def new_node(self, insn: Insn, aux: Any = None) -> int:
        """One new unlinked node; return its id."""
        w0, w1 = insn_words(insn)
        return self.new_chain(array("Q", [w0]), array("Q", [w1]), bytes([insn[0] == LD_IMM64]), [aux] if aux is not None else None)

    def link_before(self, first: int, last: int, at: int) -> None:
        """Link the chain first..last right before node `at`."""
        prev = self.prev[at]
        self.next[prev] = first
        self.prev[first] = prev
        self.next[last] = at
        self.prev[at] = last

    def link_after(self, first: int, last: int, at: int) -> None:
        """Link the chain first..last right after node `at`."""
        nxt = self.next[at]
        self.next[at] = first
        self.prev[first] = at
        self.next[last] = nxt
        if nxt != END:
            self.prev[nxt] = last

    def anchor_of(self, nid: int) -> int:
        """The node's anchor, created if it has none."""
        a = self.node_anchor[nid]
        if a == NO_ANCHOR:
            a = len(self.anchor_node)
            self.anchor_node.append(nid)
            self.node_anchor[nid] = a
        return a

    def point(self, nid: int, dest: int, subprog: bool) -> None:
        """Make node `nid` reference node `dest` (a call or pseudo func when `subprog`)."""
        a = self.anchor_of(dest)
        self.target[nid] = a
        if subprog:
            self.called_anchors.add(a)
            if self.call_index is not None:
                self.call_index.add(a, nid)
            if self.odd_called is not None and a not in self.subprog_land.values():
                self.odd_called.add(a)

    def move_anchor(self, src: int, dst: int) -> None:
        """Make everything that lands on `src` land on `dst` (kernel semantics).

        `dst` is linked right before `src` (after any deleted nodes that forward
        to it), so what lands there through them -- a subprogram start -- moves too.
        """
        if src in self.subprog_land:
            self.subprog_land[dst] = self.subprog_land.pop(src)
        a = self.node_anchor[src]
        if a == NO_ANCHOR:
            return
        self.anchor_node[a] = dst
        self.node_anchor[dst] = a
        self.node_anchor[src] = NO_ANCHOR

    # --- invariants -------------------------------------------------------------------

    def check(self, order: np.ndarray | None = None, mark: bytearray | None = None, pending: Sequence[int] = ()) -> None:
        """Raise `AssertionError` naming the first broken invariant of the store.

        Column lengths and types; ``prev``/``next`` consistent and one walk
        from the head visiting every node once; the anchor bijection; targets
        pointing at anchors; ``live`` equal to the live count; the subprogram
        bookkeeping on live nodes.  The fast paths' state is checked against
        it when given: a cached `order` must equal a fresh walk, and the
        replace `mark` may say FREE (0) only where a node is live and has a
        next node, and must say PENDING (1) exactly on the `pending` nodes.
        """
        size = len(self.orig)
        for name in ("next", "prev", "orig", "node_anchor", "target"):
            col = getattr(self, name)
            assert isinstance(col, array) and col.typecode == ID_TYPECODE, f"{name}: not an id column"
            assert len(col) == size, f"{name}: {len(col)} entries for {size} nodes"
        for name in ("w0", "w1"):
            col = getattr(self, name)
            assert isinstance(col, array) and col.typecode == "Q" and len(col) == size, f"{name}: bad word column"
        assert len(self.wide) == size, "wide: wrong length"
        assert len(self.dirty) == self.n + 1, "dirty: covers originals only"
        assert len(self.aux) <= size, "aux: longer than the node columns"
        nxt, prev, orig = view(self.next), view(self.prev), view(self.orig)
        seq = self.walk()
        assert len(seq) == size - 1 and len(np.unique(seq)) == size - 1, "next: the walk from the head misses or repeats nodes"
        assert int(nxt[seq[-1]] if len(seq) else nxt[0]) == END, "next: the last node does not end the list"
        full = np.concatenate(([0], seq))
        assert np.array_equal(prev[full[1:]], full[:-1]), "prev: not the inverse of next"
        assert self.live == int(np.count_nonzero(orig[seq] != DELETED)), "live: wrong count"
        w0 = view(self.w0, np.uint64)
        settled = np.ones(size, dtype=bool)
        settled[0] = False
        settled[list(pending)] = False  # a pending site's width is rewritten when it is linked
        is_wide = np.frombuffer(bytes(self.wide), dtype=np.uint8).astype(bool)
        assert np.array_equal(is_wide[settled], ((w0 & np.uint64(0xFF)) == LD_IMM64)[settled]), "wide: disagrees with the opcodes"
        an, na = view(self.anchor_node), view(self.node_anchor)
        assert ((an >= 0) & (an < size)).all(), "anchor_node: not a node"
        assert np.array_equal(na[an], np.arange(len(an))), "anchors: anchor_node and node_anchor are not inverse"
        assert int(np.count_nonzero(na != NO_ANCHOR)) == len(an), "anchors: a node holds an anchor that is not its own"
        tg = view(self.target)
        assert ((tg == NO_ANCHOR) | ((tg >= 0) & (tg < len(an)))).all(), "target: not an anchor"
        for nid, a in self.subprog_land.items():
            assert orig[nid] != DELETED and self.landing(an[a]) == nid, f"subprog_land: node {nid} is not where its subprogram starts"
        del nxt, prev, orig, w0, an, na, tg
        if order is not None:
            assert np.array_equal(order, seq), "order: the cached order differs from a fresh walk"
        if mark is not None:
            pend = set(pending)
            for nid in range(min(len(mark), size)):
                if nid in pend:
                    assert mark[nid] == 1, f"mark: pending node {nid} not marked pending"
                elif mark[nid] == 0:  # FREE promises: live, has a next node (BLOCKED may be conservative)
                    assert nid > 0 and self.orig[nid] != DELETED and self.next[nid] != END, f"mark: node {nid} marked free"
                else:
                    assert mark[nid] == 2, f"mark: node {nid} marked pending but not pending"
