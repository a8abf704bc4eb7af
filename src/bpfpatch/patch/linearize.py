"""`linearize`: lay a node store out as a program, once, in linear time, reading it only.

One function for both layers (the seed thread's review): it always lays out
the instructions and relocates every jump, JMP32, ``gotol``, pseudo call and
pseudo-func ``ld_imm64`` from its target reference; when the program carries
verifier-level metadata it also carries aux data, subprogram starts,
func_info and line_info across in the same walk.

Steps:

1. `Layout`: from the list order, give every node its new slot position (a
   deleted node gets the position of the next live node, which is where
   jumps, line info and subprogram starts that pointed at it land -- the
   kernel's removal semantics).  Deferred replaces (blocks, see
   `bpfpatch.patch.fast.blocks`) are laid out in front of their sites
   without being linked: what lands on a site lands on its block, as after
   a kernel patch.
2. Probe: compute every relocated offset and check it fits its field
   (`Layout.long_jumps` tells the list which jumps to relax); nothing is
   written before the probe passes.
3. Emit the slots: every node's words gathered with NumPy, blocks copied in;
   then write the offsets.
4. Map metadata through the anchors: several records landing on one slot
   keep the last one (what the kernel's removal keeps); records landing past
   the end are dropped.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from bpfpatch.errors import PatchError, RelocationError
from bpfpatch.isa import LD_IMM64, SLOT_DTYPE
from bpfpatch.isa.refs import TARGET_TABLE, Target
from bpfpatch.patch.fast.blocks import Block
from bpfpatch.patch.store import DELETED, NodeStore, view
from bpfpatch.program import FuncInfo, LineInfo, Program, compose_maps, remap_meta

_S16 = (-(1 << 15), (1 << 15) - 1)
_S32 = (-(1 << 31), (1 << 31) - 1)
#: Slot positions (landing and own slots, offsets): 32-bit, as the kernel's (a program has fewer than 2**31
#: slots), half the memory of a column a node.
_POS = np.int32
#: Nodes a piece when the aux objects are gathered into place.
_CHUNK = 1 << 10


class Layout:
    """Where every node goes, the emitted slots, and every relocated offset (steps 1-2).

    A layout is made for one program: writing it out (step 3) uses it up, its relocation columns (``at``,
    ``rel``, ``use_off``, ``ids``, ``over``) set to None so they are not kept beside the result's maps; make
    a new one to lay the store out again."""

    def __init__(self, store: NodeStore, seq: np.ndarray, blocks: Sequence[Block] = ()) -> None:
        self.store, self.blocks = store, list(blocks)
        self.order, self.land, self.own, self.total = self._positions(seq)
        self.out = self._emit()
        self.at, self.rel, self.use_off, self.ids = self._relocations()
        rel = self.rel  # out of its field's range (16 bits: off, else 32), without a bound array per reference
        self.over = np.where(self.use_off, (rel < _S16[0]) | (rel > _S16[1]), (rel < _S32[0]) | (rel > _S32[1]))

    def _positions(self, seq: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """(live node ids in order, landing slot and own slot of every node id, total slots).

        A node's landing slot is where references to it land: its own slot,
        the first slot of its deferred patch's block, or (deleted) the next
        live node's landing slot.
        """
        store = self.store
        n = len(store.next)
        live = view(store.orig)[seq] != DELETED
        width = (view(store.wide, np.uint8)[seq] + np.uint8(1)) * live  # slots per node: 0 deleted, 2 ld_imm64, else 1
        head = None
        if self.blocks:
            head = np.zeros(n, dtype=_POS)  # new slots before a deferred replace's site
            for b in self.blocks:
                head[b.sites] = b.head
            width = width + head[seq]
        start = np.cumsum(width, dtype=_POS)
        total = int(start[-1]) if len(start) else 0
        start -= width
        land = np.zeros(n, dtype=_POS)
        land[seq] = start
        del start
        own = land if head is None else land + head
        return (seq if live.all() else seq[live]), land, own, total  # nothing deleted: the order itself, no copy

    def _emit(self) -> np.ndarray:
        """The slot array with every instruction in place (list nodes' jump offsets still stale)."""
        store, order, own = self.store, self.order, self.own
        out = np.zeros(self.total, dtype=SLOT_DTYPE)
        if not len(order):
            return out
        out64 = out.view(np.uint64)
        w0, w1 = view(store.w0, np.uint64), view(store.w1, np.uint64)
        if self.total == len(order):  # one slot each, in order: a gather, no scatter
            np.take(w0, order, out=out64, mode="clip")  # every id is in range; "raise" would buffer a copy of out
        else:
            at = own[order]
            out64[at] = w0[order]
            wide = (w0[order] & np.uint64(0xFF)) == LD_IMM64
            out64[at[wide] + 1] = w1[order[wide]]
        for b in self.blocks:  # whole blocks, the site's own instruction included (already relocated)
            first = self.land[b.sites]
            if b.words.ndim == 2:  # rows of a deferred replace_rows, one word per site each (the site is a node)
                for i in range(b.head):
                    out64[first + i] = b.words[:, i]
                continue
            for i, word in enumerate(b.words.tolist()):
                out64[first + i] = word
        return out

    def _relocations(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(positions, new offsets, uses-off-field mask, node ids) of every live reference of a node."""
        store, order, out = self.store, self.order, self.out
        target = view(store.target)
        ids = order[target[order] >= 0]
        if not len(ids):
            e = np.empty(0, dtype=np.int64)
            return e, e, np.empty(0, dtype=bool), e
        at = self.own[ids]
        dest = self.land[view(store.anchor_node)[target[ids]]]
        past = dest >= self.total
        if past.any():
            raise PatchError(f"instruction {int(at[np.argmax(past)])}: its jump target was deleted and nothing follows it")
        use_off = TARGET_TABLE[out["code"][at], out["regs"][at] >> 4] == Target.OFF
        dest -= at  # the offset, in place (one array a reference fewer)
        dest -= 1
        return at, dest, use_off, ids

    def long_jumps(self) -> np.ndarray:
        """Node ids of the jumps whose offset no longer fits 16 bits (`RelocationError` past 32 bits)."""
        wide = self.over & ~self.use_off
        if wide.any():
            i = int(np.argmax(wide))
            raise RelocationError("offset does not fit in 32 bits", index=int(self.at[i]), needed=int(self.rel[i]))
        return self.ids[self.over]


def linearize(layout: Layout) -> Program:
    """The program of a layout (see the module docstring); the store is only read, the layout used up.

    The result carries ``idx_map`` (old slot -> slot where jumps, line info and
    subprogram starts that pointed at it land) and ``insn_map`` (old slot ->
    slot of the instruction itself, -1 when deleted).
    """
    if layout.over.any():
        i = int(np.argmax(layout.over))
        raise RelocationError(
            "jump offset does not fit in 16 bits (pass relax_long_jumps=True to rewrite it as gotol)"
            if layout.use_off[i]
            else "offset does not fit in 32 bits",
            index=int(layout.at[i]),
            needed=int(layout.rel[i]),
        )
    out, at, rel, use_off = layout.out, layout.at, layout.rel, layout.use_off  # the result's own slots
    # Write offsets: 16-bit field for jumps, imm for gotol / pseudo call / pseudo func.
    out["off"][at[use_off]] = rel[use_off]
    out["imm"][at[~use_off]] = rel[~use_off]
    del at, rel, use_off
    layout.at = layout.rel = layout.use_off = layout.ids = layout.over = None  # written: not kept beside the metadata's maps
    store = layout.store
    prog = store.program
    result = Program(out, name=prog.name, meta=prog.meta)
    _carry_metadata(store, prog, result, layout)
    result.external = frozenset(
        int(result.insn_map[s]) for s in prog.external if result.insn_map is not None and result.insn_map[s] >= 0
    )
    result.meta = remap_meta(prog.meta, result.insn_map, result.idx_map, len(result.slots))
    compose_maps(prog, result)
    return result


def _keep_last(positions: np.ndarray, total: int) -> np.ndarray:
    """Indices of records to keep: the last of each run landing on one slot, none past the end."""
    if not len(positions):
        return np.empty(0, dtype=np.int64)
    nxt_differs = np.ones(len(positions), dtype=bool)
    nxt_differs[:-1] = positions[1:] != positions[:-1]
    keep = nxt_differs & (positions < total)
    return np.flatnonzero(keep)


def _carry_metadata(store: NodeStore, prog: Program, result: Program, layout: Layout) -> None:
    """idx_map / insn_map, subprogram starts, func_info, line_info and aux of the result."""
    order, land, own_slot, total, blocks = layout.order, layout.land, layout.own, layout.total, layout.blocks
    n = store.n
    anchor_node = view(store.anchor_node)  # read only here (slices, not index arrays, for the originals 1..n)
    nslots = len(prog.slots)
    base_slot = store.base_slot
    # Where references to each original land (anchor k is the original anchor of node k).
    landing = land[anchor_node[1 : n + 1]] if n else np.empty(0, dtype=np.int64)
    alive = view(store.orig)[1 : n + 1] != DELETED
    idx_map = np.full(nslots, -1, dtype=np.int64)
    insn_map = np.full(nslots, -1, dtype=np.int64)
    idx_map[base_slot] = landing
    own = np.where(alive, own_slot[1 : n + 1], -1)
    insn_map[base_slot] = own
    wide = prog.slots["code"][base_slot] == LD_IMM64
    second = base_slot[wide] + 1
    second = second[second < nslots]
    idx_map[second] = np.where(own[wide][: len(second)] >= 0, own[wide][: len(second)] + 1, landing[wide][: len(second)])
    insn_map[second] = np.where(own[wide][: len(second)] >= 0, own[wide][: len(second)] + 1, -1)
    result.idx_map = idx_map
    result.insn_map = insn_map

    # Subprogram starts and func_info ride on the anchors taken at list creation.
    sub_pos = land[anchor_node[np.array(store.subprog_anchors, dtype=np.int64)]] if store.subprog_anchors else np.empty(0, np.int64)
    keep = _keep_last(sub_pos, total)
    result.subprogs = sub_pos[keep].tolist() if len(keep) else [0]
    if prog.func_info is not None:
        fi_pos = idx_map[np.array([f.insn_off for f in prog.func_info], dtype=np.int64)] if prog.func_info else np.empty(0, np.int64)
        k = _keep_last(fi_pos, total)
        result.func_info = [FuncInfo(int(fi_pos[i]), prog.func_info[i].type_id) for i in k.tolist()]
    if prog.line_info is not None:
        li_pos = idx_map[np.array([r.insn_off for r in prog.line_info], dtype=np.int64)] if prog.line_info else np.empty(0, np.int64)
        k = _keep_last(li_pos, total)
        li, new = prog.line_info, tuple.__new__  # a record per line: made in C, not by `_replace`'s Python frames
        result.line_info = [new(LineInfo, (pos, *li[i][1:])) for i, pos in zip(k.tolist(), li_pos[k].tolist())]
    if store.aux_used:
        aux_nodes = np.full(len(store.orig), None, dtype=object)  # aux stops at its last value
        aux_nodes[: len(store.aux)] = store.aux
        aux_out = np.full(total, None, dtype=object)
        for i in range(0, len(order), _CHUNK):  # in pieces: no gathered copy of the whole order beside the two
            part = order[i : i + _CHUNK]
            aux_out[own_slot[part]] = aux_nodes[part]
        del aux_nodes
        for b in blocks:
            for slot, value in b.aux:
                same = np.empty(len(b.sites), dtype=object)
                same.fill(value)  # one object at every site (a sequence must not be spread)
                aux_out[land[b.sites] + slot] = same
        if prog.aux is not None:
            # The high half of an untouched original ld_imm64 keeps its own aux.
            dirty = np.frombuffer(bytes(store.dirty), dtype=np.uint8)  # originals only
            w_ids = np.flatnonzero(wide & alive) + 1  # original node ids
            w_ids = w_ids[dirty[w_ids] == 0]
            if len(w_ids):
                base_aux = np.empty(nslots, dtype=object)
                base_aux[:] = prog.aux
                aux_out[own_slot[w_ids] + 1] = base_aux[base_slot[w_ids - 1] + 1]
        result.aux = aux_out.tolist()
