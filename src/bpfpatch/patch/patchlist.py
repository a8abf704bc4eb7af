"""`PatchList`: the list of patchable instructions (the seed thread's design).

Every instruction of a `Program` becomes a node holding

* its instruction (one node per ``ld_imm64``),
* a **target reference** for jumps, calls and pseudo-func loads -- never an
  offset until `linearize`,
* its **aux data by reference**,
* its original slot index ``orig_idx`` (or `INSERTED` / `DELETED`).

Patching is O(1) per call and never renumbers anything: `replace`,
`prepend`, `append` and `delete` relink nodes.  Several passes can patch one
list (including nodes earlier passes inserted); `linearize` then lays the
program out once.

Target references are *anchors*.  A jump stores the anchor of the node it
targets; `prepend`/`replace` with ``retarget=True`` (the kernel's semantics)
move the node's anchor onto the first new instruction, so every jump that
targeted the node -- and its line info and subprogram start -- now lands on
the patch.  A deleted node forwards to the next live node, as the kernel's
instruction removal does.

Storage is a set of parallel columns indexed by node id (0 is the dummy
head, 1..n the original instructions, then inserted nodes), so building the
list for a large program creates no per-instruction object.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence, Union

from array import array
from itertools import compress, islice, repeat
from operator import ne

import numpy as np

from bpfpatch.errors import PatchError
from bpfpatch.isa import LD_IMM64, Insn, branch_offsets, insn_starts
from bpfpatch.isa.refs import Target, subprog_ref_mask, target_of
from bpfpatch.patch.group import GroupInserts
from bpfpatch.patch.node import DELETED, INSERTED, Node, PatchInsn
from bpfpatch.patch.order import OrderCache
from bpfpatch.patch.prepared import (
    _BLOCKED,
    _END,
    _FREE,
    _PENDING,
    _INSN_CACHE,
    _INSN_CACHE_MAX,
    _MINUS_ONES,
    _NO_ANCHOR,
    _VALID,
    ID_DTYPE,
    ID_TYPECODE,
    _id_column,
    _insn_of,
    _is_call_ref,
    _prepare,
    _Prepared,
    _words,
)
from bpfpatch.program import Program

PatchItem = Union[Insn, PatchInsn, str]
Patch = Union[Sequence[PatchItem], str]

class PatchList(GroupInserts):
    """The patch list of one program; see the module docstring."""

    #: Fewer deferred replaces than this are linked one at a time (cheaper than NumPy set-up).
    FLUSH_ONE_BY_ONE = 16

    def __init__(self, program: Program) -> None:
        self.program = program
        slots = program.slots
        starts = np.flatnonzero(insn_starts(slots))
        n = len(starts)
        self._n = n
        self._base_slot = starts  # instruction index -> slot index
        self._slot_to_id = np.full(len(slots) + 1, -1, dtype=np.int64)
        self._slot_to_id[starts] = np.arange(1, n + 1)
        self._slot_to_id[len(slots)] = _END

        total = n + 1  # ids: 0 = head, 1..n originals
        # Integer columns are arrays of ID_TYPECODE: 4 bytes a node instead of a list slot
        # plus an int object each (a million-instruction list stays within memory).
        ramp = np.arange(-1, total + 1, dtype=ID_DTYPE)  # -1, 0, 1, ..., total
        self._next = _id_column(ramp[2:])
        self._next[total - 1] = _END
        self._prev = _id_column(ramp[: total])
        # Every node's instruction as encoded slot words (first slot, ld_imm64's second).
        words = slots.view(np.uint64)
        self._w0 = array("Q", [0])
        self._w0.frombytes(words[starts].tobytes())
        second = np.zeros(n, dtype=np.uint64)
        wide_first = np.flatnonzero(slots["code"][starts] == LD_IMM64)
        second[wide_first] = words[starts[wide_first] + 1]
        self._w1 = array("Q", [0])
        self._w1.frombytes(second.tobytes())
        self._wide: bytearray = bytearray(total)  # 1 where the node is an ld_imm64
        self._dirty: bytearray = bytearray(total)  # 1 where an original's insn was replaced
        codes = slots["code"][starts]
        self._wide[1:] = (codes == LD_IMM64).astype(np.uint8).tobytes()
        self._orig = _id_column(np.concatenate(([INSERTED], starts)))
        # Aux data by node id, None past the end: only as long as the last node that has
        # some (nodes inserted without aux cost nothing here).
        if program.aux is not None:
            if n == len(slots):
                self._aux: list[Any] = [None, *program.aux]
            else:
                self._aux = [None] + [program.aux[s] for s in starts.tolist()]
        else:
            self._aux = []
        # Anchors: originally anchor k is node k.
        self._anchor_node = _id_column(ramp[1 : total + 1])
        self._node_anchor = _id_column(ramp[1 : total + 1])
        self._live = n
        self._aux_used = program.aux is not None
        self._memo: dict[int, tuple[Any, _Prepared]] = {}
        self._order_cache: OrderCache | None = None  # see bpfpatch.patch.order
        # Per node: _FREE where the replace fast path may defer (a live node with a next
        # node, not pending), _PENDING where a replace is deferred, _BLOCKED otherwise.
        # Sized to the columns when a replace defers; every node creation flushes first.
        self._pend_mark = bytearray()
        self._last_deferred: tuple[Any, Any, Any] = (None, None, 0)  # (patch, its pending sites, last word)
        # Deferred replaces (see `_flush`): by prepared patch, the patch and its sites.
        self._pend_groups: dict[int, tuple[_Prepared, array]] = {}

        # Target references of the original jumps/calls (vectorized).
        target = np.full(total, _NO_ANCHOR, dtype=ID_DTYPE)
        idx, rel = branch_offsets(slots)
        if len(idx):
            if program.external:
                keep = ~np.isin(idx, np.fromiter(program.external, dtype=np.int64))
                idx, rel = idx[keep], rel[keep]
            dest = idx + rel + 1
            if len(dest) and ((dest < 0) | (dest >= len(slots))).any():
                bad = int(idx[np.argmax((dest < 0) | (dest >= len(slots)))])
                raise PatchError(f"instruction at slot {bad}: jump outside the program")
            dest_ids = self._slot_to_id[dest]
            if (dest_ids < 0).any():
                bad = int(idx[np.argmax(dest_ids < 0)])
                raise PatchError(f"instruction at slot {bad}: jump into the middle of an ld_imm64")
            target[self._slot_to_id[idx]] = dest_ids
        self._target = _id_column(target)

        # func_info / line_info must name instructions of this program (probe before anything else).
        for what, records in (("func_info", program.func_info), ("line_info", program.line_info)):
            for r in records or ():
                if not 0 <= r.insn_off < len(slots) or self._slot_to_id[r.insn_off] < 0:
                    raise PatchError(f"{what} record at slot {r.insn_off} is not an instruction of the program")
        # Subprogram starts, func_info and line_info ride on anchors.
        self._subprog_anchors = self._anchors_of_slots(program.subprogs, "subprogram start")
        calls = set()
        if len(idx):
            is_call = subprog_ref_mask(slots, idx)
            calls = set(self._slot_to_id[idx[is_call] + rel[is_call] + 1].tolist())
        self._called_anchors: set[int] = calls
        self._call_index: dict[int, list[int]] | None = None  # see _call_sites
        self._odd_called: set[int] | None = None  # called anchors that are no subprogram's (rare)
        # node id -> subprogram anchor landing on it (for the delete check).
        self._subprog_land: dict[int, int] = {a: a for a in self._subprog_anchors}

    # --- internals ------------------------------------------------------------------

    def _anchors_of_slots(self, slot_list: Iterable[int], what: str) -> list[int]:
        out = []
        nslots = len(self.program.slots)
        for s in slot_list:
            nid = int(self._slot_to_id[s]) if 0 <= s <= nslots else -1
            if nid < 0:
                raise PatchError(f"{what} at slot {s} is not at an instruction")
            out.append(nid)
        return out

    def _get_insn(self, nid: int) -> Insn:
        w0 = self._w0[nid]
        insn = _INSN_CACHE.get(w0)  # only single-slot instructions are cached
        if insn is None:
            insn = _insn_of(w0, self._w1[nid])
            if insn[0] != LD_IMM64 and len(_INSN_CACHE) < _INSN_CACHE_MAX:
                _INSN_CACHE[w0] = insn
        return insn

    def _set_insn(self, nid: int, insn: Insn) -> None:
        """Give a node a new instruction (its target reference is the caller's business)."""
        w0, w1 = _words([insn])
        self._w0[nid] = w0[0]
        self._w1[nid] = w1[0]
        self._wide[nid] = insn[0] == LD_IMM64
        if nid < len(self._dirty):
            self._dirty[nid] = 1

    def _next_live(self, nid: int) -> int:
        if self._pend_groups:
            self._flush()
        nxt, orig = self._next, self._orig
        nid = nxt[nid]
        while nid != _END and orig[nid] == DELETED:
            nid = nxt[nid]
        return nid

    def _check_node(self, node: Node, what: str = "patch") -> int:
        # One combined test on the hot path; the slow path says what is wrong.
        if type(node) is Node and node._pl is self and node._id and self._orig[node._id] != DELETED:
            return node._id
        if not isinstance(node, Node):
            raise PatchError(f"{what}: expected a Node, got {type(node).__name__}")
        if node._pl is not self:
            raise PatchError(f"{what}: the node belongs to another PatchList")
        if node._id == 0:
            raise PatchError(f"{what}: the head is not an instruction")
        if self._orig[node._id] == DELETED:
            raise PatchError(f"{what}: node {node._id} was deleted")
        return node._id

    def _anchor_of(self, nid: int) -> int:
        """The node's current anchor, created if it has none."""
        a = self._node_anchor[nid]
        if a == _NO_ANCHOR:
            a = len(self._anchor_node)
            self._anchor_node.append(nid)
            self._node_anchor[nid] = a
        return a

    def _move_anchor(self, src: int, dst: int) -> None:
        """Make everything that lands on `src` land on `dst` (kernel semantics)."""
        a = self._node_anchor[src]
        if a == _NO_ANCHOR:
            return
        self._anchor_node[a] = dst
        self._node_anchor[dst] = a
        self._node_anchor[src] = _NO_ANCHOR
        if src in self._subprog_land:
            self._subprog_land[dst] = self._subprog_land.pop(src)

    def _set_aux(self, nid: int, value: Any) -> None:
        aux = self._aux
        if nid >= len(aux):
            if value is None:
                return
            aux.extend([None] * (nid + 1 - len(aux)))
        aux[nid] = value
        self._aux_used = True

    def _extend_mark(self) -> None:
        """Cover the nodes created since the mark last grew (see `_pend_mark`)."""
        start = len(self._pend_mark)
        blocked = (np.frombuffer(self._orig, dtype=ID_DTYPE)[start:] == DELETED) | (
            np.frombuffer(self._next, dtype=ID_DTYPE)[start:] == _END
        )
        if start == 0:
            blocked[0] = True  # the dummy head
        self._pend_mark.extend(np.where(blocked, _BLOCKED, _FREE).astype(np.uint8).tobytes())

    def _extend_aux(self, base: int, values: list[Any]) -> None:
        """Aux data of new nodes `base`, `base` + 1, ... (called only when some is not None)."""
        aux = self._aux
        if len(aux) < base:
            aux.extend([None] * (base - len(aux)))
        aux.extend(values)
        self._aux_used = True

    def _new_node(self, insn: Insn, aux: Any) -> int:
        nid = len(self._orig)
        self._next.append(_END)
        self._prev.append(_END)
        w0, w1 = _words([insn])
        self._w0.extend(w0)
        self._w1.extend(w1)
        self._wide.append(insn[0] == LD_IMM64)
        self._orig.append(INSERTED)
        self._set_aux(nid, aux)
        self._node_anchor.append(_NO_ANCHOR)
        self._target.append(_NO_ANCHOR)
        return nid

    def _before_deleted_run(self, x: int) -> int:
        """The first of the deleted nodes right before `x` (or `x`).

        References to those deleted nodes land on `x`; inserting before them
        keeps it so when jumps must not move onto the patch (retarget=False).
        """
        p = self._prev[x]
        while p > 0 and self._orig[p] == DELETED:
            x, p = p, self._prev[p]
        return x

    def _new_chain(self, prep: _Prepared, start: int, stop: int) -> list[int]:
        """Create linked nodes for prep items [start, stop) (first.prev / last.next left to the caller)."""
        k = stop - start
        base = len(self._orig)
        ids = range(base, base + k)
        self._next.extend(range(base + 1, base + k + 1))
        self._prev.extend(range(base - 1, base + k - 1))
        if start == 0 and stop == len(prep.insns):
            self._w0.extend(prep.w0)
            self._w1.extend(prep.w1)
            self._wide.extend(prep.wide)
        else:
            self._w0.extend(prep.w0[start:stop])
            self._w1.extend(prep.w1[start:stop])
            self._wide.extend(prep.wide[start:stop])
        if prep.any_aux:
            self._extend_aux(base, prep.aux[start:stop])
        minus = _MINUS_ONES[k] if k < len(_MINUS_ONES) else array(ID_TYPECODE, [-1] * k)
        self._orig.extend(minus)  # INSERTED
        self._node_anchor.extend(minus)  # no anchor yet
        self._target.extend(minus)  # no target
        return list(ids)

    def _prepared(self, patch: Patch, has_after: bool) -> _Prepared:
        """The parsed patch and its reference plan; memoized for tuples of plain Insns.

        Passes often emit the same immutable patch at many sites (e.g. one
        guard per register pair): preparing it once makes those patches cheap.
        """
        if type(patch) is tuple:
            key = id(patch) * 2 + has_after
            hit = self._memo.get(key)
            if hit is not None and hit[0] is patch:
                return hit[1]
            items = self._parse(patch)
            prep = _prepare(items, self._plan(items, has_after))
            if all(it[1] is None for it in items):
                self._memo[key] = (patch, prep)
            return prep
        items = self._parse(patch)
        return _prepare(items, self._plan(items, has_after))

    def _link_before(self, first: int, last: int, at: int) -> None:
        prev = self._prev[at]
        self._next[prev] = first
        self._prev[first] = prev
        self._next[last] = at
        self._prev[at] = last

    def _link_after(self, first: int, last: int, at: int) -> None:
        nxt = self._next[at]
        self._next[at] = first
        self._prev[first] = at
        self._next[last] = nxt
        if nxt != _END:
            self._prev[nxt] = last

    def _parse(self, patch: Patch) -> list[PatchInsn]:
        if isinstance(patch, str):
            from bpfpatch.asm import assemble  # text patches only

            patch = assemble(patch)
        items: list[PatchInsn] = []
        push = items.append
        for item in patch:
            if type(item) is Insn:
                if not _VALID[item[0]]:
                    self._bad_item(len(items), item)
                push(PatchInsn(item))
            elif isinstance(item, PatchInsn):
                if not _VALID[item.insn[0]]:
                    self._bad_item(len(items), item.insn)
                if item.target is not None:
                    self._check_node(item.target, f"patch item {len(items)} target")
                    if target_of(item.insn[0], item.insn[2]) == Target.NONE:
                        raise PatchError(f"patch item {len(items)}: {item.insn} has a target but is not a jump or call")
                push(item)
            elif isinstance(item, str):
                from bpfpatch.asm import assemble

                items.extend(PatchInsn(i) for i in assemble(item))
            elif isinstance(item, tuple) and len(item) == 5:
                insn = Insn(*item)
                if not (0 <= insn[0] < 256) or not _VALID[insn[0]]:
                    self._bad_item(len(items), insn)
                push(PatchInsn(insn))
            else:
                raise PatchError(f"patch item {item!r} is not an Insn, PatchInsn or assembly text")
        if not items:
            raise PatchError("empty patch: to remove an instruction use delete()")
        return items

    @staticmethod
    def _bad_item(i: int, insn: Insn) -> None:
        raise PatchError(f"patch item {i}: invalid opcode {insn[0]:#x} (a raw ld_imm64 half cannot be patched in)")

    def _plan(self, items: list[PatchInsn], has_after: bool) -> list[tuple[int, str, int]]:
        """Resolve the buffer's references before anything is changed (probe before write).

        Returns (item, "buf" | "after" | "node", value) for every item that
        references an instruction: a buffer index, the node after the buffer,
        or an explicit target node id.
        """
        plan: list[tuple[int, str, int]] = []
        starts: list[int] | None = None
        nslots = len(items)
        for i, it in enumerate(items):
            insn = it[0]
            ref = target_of(insn[0], insn[2])
            if ref == Target.NONE:
                continue
            if it[1] is not None:
                plan.append((i, "node", it[1]._id))
                continue
            if starts is None:
                if any(p[0][0] == LD_IMM64 for p in items):
                    starts, s = [], 0
                    for p in items:
                        starts.append(s)
                        s += 2 if p[0][0] == LD_IMM64 else 1
                    nslots = s
                else:
                    starts = list(range(len(items)))
            if ref == Target.OFF:
                rel = insn[3]
            elif insn[0] == LD_IMM64:
                rel = Insn(*insn).imm_lo
            else:
                rel = insn[4]
            dest = starts[i] + rel + 1
            if dest == nslots:
                if not has_after:
                    raise PatchError(f"patch item {i}: jumps past the end of the program")
                plan.append((i, "after", 0))
                continue
            try:
                j = starts.index(dest)
            except ValueError:
                raise PatchError(
                    f"patch item {i}: jump to buffer slot {dest} leaves the patch buffer "
                    f"(0..{nslots}); give a target node with PatchInsn(insn, target=node)"
                ) from None
            plan.append((i, "buf", j))
        return plan

    def _insert(self, prep: _Prepared, ids: list[int], after: int) -> None:
        """Point the new nodes' references at their targets' anchors."""
        for i, how, value, is_call in prep.plan:
            tgt = ids[value] if how == "buf" else (after if how == "after" else value)
            a = self._anchor_of(tgt)
            self._target[ids[i]] = a
            if is_call:
                self._called_anchors.add(a)
                if self._call_index is not None:
                    self._call_index.setdefault(a, []).append(ids[i])
                if self._odd_called is not None and a not in self._subprog_land.values():
                    self._odd_called.add(a)

    # --- public API -----------------------------------------------------------------

    def __iter__(self) -> Iterator[Node]:
        """Live nodes in order; nodes inserted during the iteration are not visited."""
        if self._pend_groups:
            self._flush()
        limit = len(self._orig)
        nxt, orig = self._next, self._orig
        new = object.__new__  # a handle without an __init__ frame: a fifth of the loop
        if limit == self._n + 1:
            # No node was ever created, and nodes never move: list order is id order.
            # The walk and the deleted test then run in C (read lazily, so a node the
            # caller deletes before the loop reaches it is skipped).
            for nid in compress(range(1, limit), map(ne, repeat(DELETED), islice(orig, 1, None))):
                node = new(Node)
                node._pl = self
                node._id = nid
                yield node
            return
        nid = nxt[0]
        while nid != _END:
            if nid < limit and orig[nid] != DELETED:
                node = new(Node)
                node._pl = self
                node._id = nid
                yield node
            nid = nxt[nid]

    def __len__(self) -> int:
        """Number of live instructions."""
        if self._pend_groups:
            self._flush()
        return self._live

    @property
    def head(self) -> Node:
        """The dummy head: `append(pl.head, patch)` inserts at the very start."""
        return Node(self, 0)

    @property
    def id_bound(self) -> int:
        """One more than the largest node id (size an array indexed by node id with it)."""
        return len(self._orig)

    def node(self, node_id: int) -> Node:
        """The node with id `node_id` (as `Node.id`, `live_ids` and `target_ids` give them)."""
        if not 0 < node_id < len(self._orig):
            raise PatchError(f"node id {node_id} is not a node of this list")
        return Node(self, int(node_id))

    def find(self, orig_idx: int) -> Node | None:
        """The node of the original instruction at slot `orig_idx`, or None if no instruction starts there."""
        if not 0 <= orig_idx < len(self.program.slots):
            return None
        nid = int(self._slot_to_id[orig_idx])
        return Node(self, nid) if nid > 0 else None

    def target_ids(self, ids: np.ndarray) -> np.ndarray:
        """Per node id of `ids`: the id of the node its target reference lands on, or -1.

        The vectorized `Node.target`: jumps, pseudo calls and pseudo-func
        loads have a target (which field held its offset, and what else an
        instruction refers to, is `bpfpatch.isa.refs`); a deleted target
        lands on the next live node, a target with nothing live after it on -1.
        """
        if self._pend_groups:
            self._flush()
        ids = np.asarray(ids, dtype=np.int64)
        anchors = np.frombuffer(self._target, dtype=ID_DTYPE)[ids]
        out = np.full(len(ids), -1, dtype=np.int64)
        has = np.flatnonzero(anchors >= 0)
        if len(has):
            dest = np.frombuffer(self._anchor_node, dtype=ID_DTYPE)[anchors[has]].astype(np.int64)
            orig = np.frombuffer(self._orig, dtype=ID_DTYPE)
            gone = np.flatnonzero(orig[dest] == DELETED)
            del orig
            for j in gone.tolist():  # a deleted target: where it lands now
                dest[j] = self._landing(int(dest[j]))
            out[has] = dest
        return out

    def node_at(self, orig_idx: int) -> Node:
        """The node of the original instruction at slot `orig_idx`."""
        if not 0 <= orig_idx < len(self.program.slots):
            raise PatchError(f"slot {orig_idx} is outside the program")
        nid = int(self._slot_to_id[orig_idx])
        if nid < 0:
            raise PatchError(f"slot {orig_idx} is the second half of an ld_imm64")
        return Node(self, nid)

    def replace(self, node: Node, patch: Patch, *, retarget: bool = True) -> Node:
        """Replace the node's instruction with `patch`; return the last new node.

        The node itself becomes the last instruction of the patch and keeps its
        aux data (as the kernel's adjust_insn_aux_data moves it to the end of the
        patch).  Jumps to the node land on the first patch instruction
        (``retarget=True``, kernel semantics) or on the last (``False``).
        """
        # The hot path of every pass, written out flat.  Fastest: the same patch as the
        # last deferred replace (a pass patching every site alike) -- one list append.
        last = self._last_deferred
        if patch is last[0] and type(node) is Node and node._pl is self and retarget:
            x = node._id
            mark = self._pend_mark
            if not mark[x]:  # _FREE: one byte stands for four checks
                last[1].append(x)
                mark[x] = _PENDING
                # The node's new instruction, at once (one slot: its second word and
                # width only matter to the link, which rewrites them).
                self._w0[x] = last[2]
                return node
        # Then: one check, one memo lookup, column extends and four link stores per patch.
        x = node._id if type(node) is Node and node._pl is self else 0
        if not x or self._orig[x] == DELETED:
            x = self._check_node(node, "replace")
        nxt = self._next
        has_after = nxt[x] != _END
        hit = self._memo.get(id(patch) * 2 + has_after) if type(patch) is tuple else None
        mark = self._pend_mark
        if len(mark) < len(self._orig):  # no node is created while replaces are deferred
            self._extend_mark()
        if hit is not None and hit[0] is patch and retarget and hit[1].deferrable and mark[x] != _PENDING:
            # A memoized patch on a node not patched since the last flush: change the
            # node now, link its new predecessors later, all sites of a patch at once.
            prep = hit[1]
            group = self._pend_groups.get(id(prep))
            if group is None:
                group = self._pend_groups[id(prep)] = (prep, array(ID_TYPECODE, [x]))  # NumPy reads it in place
            else:
                group[1].append(x)
            if has_after and not prep.last_wide:
                self._last_deferred = (patch, group[1], prep.last_w0)
            mark[x] = _PENDING
            # The node's own instruction changes now (`node.insn` never waits for the link).
            self._w0[x] = prep.last_w0
            self._w1[x] = prep.last_w1
            self._wide[x] = prep.last_wide
            return node
        if self._pend_groups:
            self._flush()
        prep = hit[1] if hit is not None and hit[0] is patch else self._prepared(patch, has_after)
        self._replace_now(x, prep, retarget)
        return node

    def _replace_now(self, x: int, prep: _Prepared, retarget: bool) -> None:
        """`replace` of node `x`, linked at once: column extends and four link stores."""
        nxt = self._next
        k = len(prep.w0) - 1
        base = len(self._orig)
        if k:
            prev = self._prev
            # extend() from a ready array, then chain: an array built from a range costs more.
            nxt.extend(prep.minus)
            prev.extend(prep.minus)
            for i in range(base, base + k - 1):
                nxt[i] = i + 1
                prev[i + 1] = i
            self._w0.extend(prep.head_w0)
            self._w1.extend(prep.head_w1)
            self._wide.extend(prep.head_wide)
            if prep.any_aux:
                self._extend_aux(base, prep.head_aux)
            self._orig.extend(prep.minus)
            self._node_anchor.extend(prep.minus)
            self._target.extend(prep.minus)
            at = x if retarget else self._before_deleted_run(x)
            last = base + k - 1
            p = prev[at]
            nxt[p] = base
            prev[base] = p
            nxt[last] = at
            prev[at] = last
            if retarget:
                self._move_anchor(x, base)
            self._live += k
        self._w0[x] = prep.w0[k]
        self._w1[x] = prep.w1[k]
        self._wide[x] = prep.wide[k]
        if x < len(self._dirty):
            self._dirty[x] = 1
        self._target[x] = _NO_ANCHOR
        if prep.aux[k] is not None:
            self._set_aux(x, prep.aux[k])
        if prep.plan:
            self._insert(prep, [*range(base, base + k), x], nxt[x])

    def prepend(self, node: Node, patch: Patch, *, retarget: bool = True) -> Node:
        """Insert `patch` before the node, leaving the node and its aux untouched.

        Jumps to the node land on the first inserted instruction
        (``retarget=True``, kernel semantics) or still on the node (``False``).
        Returns the last inserted node.
        """
        x = self._check_node(node, "prepend")
        if self._pend_groups:
            self._flush()
        prep = self._prepared(patch, True)
        ids = self._new_chain(prep, 0, len(prep.insns))
        self._link_before(ids[0], ids[-1], x if retarget else self._before_deleted_run(x))
        if retarget:
            self._move_anchor(x, ids[0])
        self._live += len(ids)
        if prep.plan:
            self._insert(prep, ids, x)
        return Node(self, ids[-1])

    def append(self, node: Node, patch: Patch) -> Node:
        """Insert `patch` after the node; return the last new node.

        ``append(pl.head, patch)`` inserts at the very start of the program,
        which is `prepend` to the first instruction (kernel semantics: the
        new code becomes the start of subprogram 0).
        """
        if self._pend_groups:
            self._flush()
        if isinstance(node, Node) and node._pl is self and node._id == 0:
            first = self._next_live(0)
            if first == _END:
                raise PatchError("append: the program is empty")
            return self.prepend(Node(self, first), patch)
        x = self._check_node(node, "append")
        if self._pend_groups:
            self._flush()
        prep = self._prepared(patch, self._next[x] != _END)
        ids = self._new_chain(prep, 0, len(prep.insns))
        self._link_after(ids[0], ids[-1], x)
        self._live += len(ids)
        if prep.plan:
            self._insert(prep, ids, self._next[ids[-1]])
        return Node(self, ids[-1])

    def delete(self, node: Node) -> None:
        """Delete the node; jumps to it land on the next live instruction."""
        x = self._check_node(node, "delete")
        if self._pend_groups:
            self._flush()
        a = self._subprog_land.get(x)
        if a is not None:
            nxt = self._next_live(x)
            if nxt == _END or nxt in self._subprog_land:
                if self._called_anchors_land(x):
                    raise PatchError(
                        f"delete: node {x} is the only instruction left of a subprogram that a call still targets"
                    )
                if nxt == _END and self._live == 1:
                    raise PatchError("delete: cannot delete the last instruction of the program")
                del self._subprog_land[x]
            else:
                del self._subprog_land[x]
                self._subprog_land[nxt] = a
        elif self._live == 1:
            raise PatchError("delete: cannot delete the last instruction of the program")
        self._orig[x] = DELETED
        if x < len(self._pend_mark):
            self._pend_mark[x] = _BLOCKED
        self._live -= 1

    def _landing(self, nid: int) -> int:
        """The first live node at or after `nid` (where references to it land)."""
        if self._pend_groups:
            self._flush()
        nxt, orig = self._next, self._orig
        while nid != _END and orig[nid] == DELETED:
            nid = nxt[nid]
        return nid

    def _called_anchors_land(self, nid: int) -> bool:
        """Does a live call or pseudo-func load still land on node `nid`?

        Only reached when a deletion would remove the last instruction of the
        subprogram that lands on `nid`.  Calls target subprogram starts, so the
        candidates are that subprogram's anchor and `nid`'s own; anchors of
        calls elsewhere (rare) are looked at one by one.  The call sites of an
        anchor come from a reverse index built once (`_call_sites`); an anchor
        found with no live call is dropped from the called set, so a chain of
        dead subprograms costs one look per subprogram, not a scan each.
        """
        called = self._called_anchors
        cands = {a for a in (self._subprog_land.get(nid), self._node_anchor[nid]) if a is not None and a in called}
        if self._odd_called is None:
            self._odd_called = called - set(self._subprog_land.values()) - set(self._subprog_anchors)
        an = self._anchor_node
        cands |= {a for a in self._odd_called if a in called and self._landing(an[a]) == nid}
        if not cands:
            return False
        sites = self._call_sites()
        target, orig = self._target, self._orig
        for a in cands:
            if any(orig[s] != DELETED and target[s] == a and _is_call_ref(self._get_insn(s)) for s in sites.get(a, ())):
                return True
        for a in cands:  # nothing calls them any more (a new call re-adds them, see _insert)
            called.discard(a)
            self._odd_called.discard(a)
        return False

    def _call_sites(self) -> dict[int, list[int]]:
        """Called anchor -> node ids whose reference points at it (built once, kept by `_insert`)."""
        if self._call_index is None:
            target = np.frombuffer(self._target, dtype=ID_DTYPE)
            called = np.fromiter(self._called_anchors, dtype=np.int64, count=len(self._called_anchors))
            src = np.flatnonzero(np.isin(target, called))
            index: dict[int, list[int]] = {}
            for s, a in zip(src.tolist(), target[src].tolist()):
                index.setdefault(a, []).append(s)
            self._call_index = index
        return self._call_index

    def landing(self, node: Node) -> Node | None:
        """Where a reference to `node` lands now: itself, or the next live node if deleted."""
        nid = self._landing(node._id)
        return None if nid == _END else Node(self, nid)

    def linearize(self, *, relax_long_jumps: bool = False) -> Program:
        """Lay out the final program once; see `bpfpatch.patch.linearize`."""
        from bpfpatch.patch.linearize import linearize

        return linearize(self, relax_long_jumps=relax_long_jumps)
