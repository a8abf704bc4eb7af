"""`linearize`: lay a patch list out as a program, once, in linear time.

One function for both layers (the seed thread's review): it always lays out
the instructions and relocates every jump, JMP32, ``gotol``, pseudo call and
pseudo-func ``ld_imm64`` from its target reference; when the program carries
verifier-level metadata it also carries aux data, subprogram starts,
func_info and line_info across in the same walk.

Steps:

1. Walk the list once: give every node its new slot position (a deleted node
   gets the position of the next live node, which is where jumps, line info
   and subprogram starts that pointed at it land -- the kernel's removal
   semantics).  Deferred replaces (`PatchList.replace` with a reused patch)
   are laid out as blocks in front of their sites without being linked:
   what lands on a site lands on its block, as after a kernel patch.
2. Probe: compute every relocated offset and check it fits its field; with
   ``relax_long_jumps`` rewrite the ones that do not (``ja`` -> ``gotol``,
   conditional -> inverted condition over a ``gotol``) and lay out again.
   Nothing is written before the probe passes.
3. Emit the slots: untouched original instructions are copied in bulk with
   NumPy, patched ones from their `Insn`; then write the offsets.
4. Map metadata through the anchors: several records landing on one slot
   keep the last one (what the kernel's removal keeps); records landing past
   the end are dropped.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from bpfpatch.errors import PatchError, RelocationError
from bpfpatch.isa import GOTOL, INVERTED_JMP, LD_IMM64, SLOT_DTYPE, Insn, JmpOp
from bpfpatch.isa.refs import TARGET_OF, TARGET_TABLE, Target
from bpfpatch.isa.opcodes import OP_MASK, InsnClass
from bpfpatch.patch.node import DELETED
from bpfpatch.patch.order import list_order
from bpfpatch.patch.prepared import ID_DTYPE, _Prepared
from bpfpatch.program import FuncInfo, Program, compose_maps, remap_meta

if TYPE_CHECKING:
    from bpfpatch.patch.patchlist import PatchList

_END = -1
_S16 = (-(1 << 15), (1 << 15) - 1)
_S32 = (-(1 << 31), (1 << 31) - 1)



class _Block(NamedTuple):
    """The new instructions of a deferred replace, laid out at every one of its sites."""

    sites: np.ndarray
    head: int  # slots of new instructions before the site's own
    words: np.ndarray  # every slot of the block (the site's own last), references resolved
    aux: list[tuple[int, Any]]  # (slot in the block, aux) of new instructions that carry some


def _block(prep: _Prepared, sites: np.ndarray) -> _Block | None:
    """A deferred patch as one block of slot words, or None when an offset does not fit.

    A deferred patch references only its own items and "the node after it",
    which is always the slot right after its block: every offset is a
    constant of the patch, so the words are relocated once, for all sites.
    """
    slot_of, width = [], 0
    for wide in prep.wide:
        slot_of.append(width)
        width += 1 + wide
    words = np.zeros(width, dtype=np.uint64)
    for i, s in enumerate(slot_of):
        words[s] = prep.w0[i]
        if prep.wide[i]:
            words[s + 1] = prep.w1[i]
    for i, how, v, _ in prep.plan:
        rel = (width if how == "after" else slot_of[v]) - slot_of[i] - 1
        w = int(words[slot_of[i]])
        if TARGET_OF[(w & 0xFF) << 4 | (w >> 12) & 0xF] == Target.OFF:
            if not _S16[0] <= rel <= _S16[1]:
                return None
            w = (w & ~(0xFFFF << 16)) | (rel & 0xFFFF) << 16
        else:
            if not _S32[0] <= rel <= _S32[1]:
                return None
            w = (w & 0xFFFFFFFF) | (rel & 0xFFFFFFFF) << 32
        words[slot_of[i]] = w
    aux = [(slot_of[i], a) for i, a in enumerate(prep.aux) if a is not None]
    return _Block(sites, slot_of[-1], words, aux)


def _layout(pl: "PatchList", blocks: list[_Block]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(live node ids in order, landing slot and own slot of every node id, total slots).

    A node's landing slot is where references to it land: its own slot, the
    first slot of its deferred patch's block, or (deleted) the next live
    node's landing slot.
    """
    seq = list_order(pl)
    n = len(pl._next)
    # Views, not copies (the columns are the bulk of the memory); all released on return,
    # before anything may grow the columns again.
    orig = np.frombuffer(pl._orig, dtype=ID_DTYPE)
    wide = np.frombuffer(pl._wide, dtype=np.uint8)
    live = orig[seq] != DELETED
    width = (wide[seq] + np.uint8(1)) * live  # slots per node: 0 deleted, 2 ld_imm64, else 1
    head = None
    if blocks:
        head = np.zeros(n, dtype=np.int64)  # new slots before a deferred replace's site
        for b in blocks:
            head[b.sites] = b.head
        width = width + head[seq]
    start = np.cumsum(width, dtype=np.int64)
    total = int(start[-1]) if len(start) else 0
    start -= width
    land = np.zeros(n, dtype=np.int64)
    land[seq] = start
    own = land if head is None else land + head
    return seq[live], land, own, total


def _ints(column: array) -> np.ndarray:
    """A copy of an id column as a NumPy array (one memory copy, no per-element conversion)."""
    return np.frombuffer(column, dtype=ID_DTYPE).copy()


def _emit(pl: "PatchList", order: np.ndarray, land: np.ndarray, own: np.ndarray, total: int,
          blocks: list[_Block]) -> np.ndarray:
    """The slot array with every instruction in place (list nodes' jump offsets still stale)."""
    out = np.zeros(total, dtype=SLOT_DTYPE)
    if not len(order):
        return out
    out64 = out.view(np.uint64)
    w0 = np.frombuffer(pl._w0, dtype=np.uint64)
    w1 = np.frombuffer(pl._w1, dtype=np.uint64)
    if total == len(order):  # one slot each, in order: a gather, no scatter
        np.take(w0, order, out=out64)
    else:
        at = own[order]
        out64[at] = w0[order]
        wide = (w0[order] & np.uint64(0xFF)) == LD_IMM64
        out64[at[wide] + 1] = w1[order[wide]]
    for b in blocks:  # whole blocks, the site's own instruction included (already relocated)
        first = land[b.sites]
        for i, word in enumerate(b.words.tolist()):
            out64[first + i] = word
    return out


def _relocations(pl: "PatchList", order: np.ndarray, land: np.ndarray, own: np.ndarray, total: int, out: np.ndarray):
    """(positions, new offsets, uses-off-field mask, node ids) of every live reference of a node."""
    target = np.frombuffer(pl._target, dtype=ID_DTYPE)  # a view, released on return
    ids = order[target[order] >= 0]
    if not len(ids):
        e = np.empty(0, dtype=np.int64)
        return e, e, np.empty(0, dtype=bool), e
    anchor_node = np.frombuffer(pl._anchor_node, dtype=ID_DTYPE)
    at = own[ids]
    dest = land[anchor_node[target[ids]]]
    past = dest >= total
    if past.any():
        raise PatchError(f"instruction {int(at[np.argmax(past)])}: its jump target was deleted and nothing follows it")
    rel = dest - at - 1
    use_off = TARGET_TABLE[out["code"][at], out["regs"][at] >> 4] == Target.OFF
    return at, rel, use_off, ids


def _relax(pl: "PatchList", node_ids: list[int]) -> None:
    """Rewrite jumps whose offset overflowed 16 bits into gotol forms."""
    for nid in node_ids:
        insn = pl._get_insn(nid)
        a = pl._target[nid]
        op = insn.code & OP_MASK
        if insn.code == InsnClass.JMP | JmpOp.JA:
            pl._set_insn(nid, Insn(GOTOL))
            continue
        succ = pl._next[nid]
        if succ == _END:
            raise PatchError(f"node {nid}: cannot relax a conditional jump at the end of the program")
        g = pl._new_node(Insn(GOTOL), None)
        pl._target[g] = a
        inv = INVERTED_JMP.get(JmpOp(op)) if op != JmpOp.JCOND else None
        if inv is not None:
            # if !cond goto <after gotol>; gotol <target>
            pl._set_insn(nid, insn._replace(code=(insn.code & ~OP_MASK) | inv, off=0))
            pl._link_after(g, g, nid)
            pl._target[nid] = pl._anchor_of(succ)
        else:
            # jset/may_goto: if cond goto <gotol>; goto <after gotol>; gotol <target>
            j = pl._new_node(Insn(InsnClass.JMP | JmpOp.JA), None)
            pl._next[j] = g
            pl._prev[g] = j
            pl._link_after(j, g, nid)
            pl._target[j] = pl._anchor_of(succ)
            pl._target[nid] = pl._anchor_of(g)
            pl._live += 1
        pl._live += 1


def linearize(pl: "PatchList", *, relax_long_jumps: bool = False) -> Program:
    """Lay out `pl` as a new `Program` (see module docstring).

    The result carries ``idx_map`` (old slot -> slot where jumps, line info and
    subprogram starts that pointed at it land) and ``insn_map`` (old slot ->
    slot of the instruction itself, -1 when deleted).
    """
    blocks: list[_Block] = []
    if pl._pend_groups:
        # Deferred replaces are laid out as blocks, not linked (linking costs more than
        # the layout); the list keeps them pending.  A block whose own offsets do not
        # fit (a patch over 32K instructions) is linked first, like any other patch.
        blocks = [_block(prep, sites) for prep, sites in pl._settled_groups()]
        if any(b is None for b in blocks):
            pl._flush()
            blocks = []
    while True:
        order, land, own, total = _layout(pl, blocks)
        out = _emit(pl, order, land, own, total, blocks)
        at, rel, use_off, ids = _relocations(pl, order, land, own, total, out)
        lo, hi = np.where(use_off, _S16[0], _S32[0]), np.where(use_off, _S16[1], _S32[1])
        over = (rel < lo) | (rel > hi)
        if not over.any():
            break
        if not relax_long_jumps:
            i = int(np.argmax(over))
            raise RelocationError(
                "jump offset does not fit in 16 bits (pass relax_long_jumps=True to rewrite it as gotol)"
                if use_off[i]
                else "offset does not fit in 32 bits",
                index=int(at[i]),
                needed=int(rel[i]),
            )
        if (over & ~use_off).any():
            i = int(np.argmax(over & ~use_off))
            raise RelocationError("offset does not fit in 32 bits", index=int(at[i]), needed=int(rel[i]))
        if blocks:  # relaxing inserts nodes: link the deferred replaces first
            pl._flush()
            blocks = []
            continue
        _relax(pl, ids[over].tolist())

    # Write offsets: 16-bit field for jumps, imm for gotol / pseudo call / pseudo func.
    out["off"][at[use_off]] = rel[use_off]
    out["imm"][at[~use_off]] = rel[~use_off]

    prog = pl.program
    result = Program(out, name=prog.name, meta=prog.meta)
    _carry_metadata(pl, prog, result, order, land, own, total, blocks)
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


def _carry_metadata(pl: "PatchList", prog: Program, result: Program, order: np.ndarray, land: np.ndarray,
                    own_slot: np.ndarray, total: int, blocks: list[_Block]) -> None:
    n = pl._n
    anchor_node = _ints(pl._anchor_node)
    nslots = len(prog.slots)
    orig_ids = np.arange(1, n + 1)
    base_slot = pl._base_slot
    # Where references to each original land (anchor k is the original anchor of node k).
    landing = land[anchor_node[orig_ids]] if n else np.empty(0, dtype=np.int64)
    alive = _ints(pl._orig[1 : n + 1]) != DELETED
    idx_map = np.full(nslots, -1, dtype=np.int64)
    insn_map = np.full(nslots, -1, dtype=np.int64)
    idx_map[base_slot] = landing
    own = np.where(alive, own_slot[orig_ids], -1)
    insn_map[base_slot] = own
    wide = prog.slots["code"][base_slot] == LD_IMM64
    second = base_slot[wide] + 1
    second = second[second < nslots]
    idx_map[second] = np.where(own[wide][: len(second)] >= 0, own[wide][: len(second)] + 1, landing[wide][: len(second)])
    insn_map[second] = np.where(own[wide][: len(second)] >= 0, own[wide][: len(second)] + 1, -1)
    result.idx_map = idx_map
    result.insn_map = insn_map

    # Subprogram starts and func_info ride on the anchors taken at list creation.
    sub_pos = land[anchor_node[np.array(pl._subprog_anchors, dtype=np.int64)]] if pl._subprog_anchors else np.empty(0, np.int64)
    keep = _keep_last(sub_pos, total)
    result.subprogs = sub_pos[keep].tolist() if len(keep) else [0]
    if prog.func_info is not None:
        fi_pos = idx_map[np.array([f.insn_off for f in prog.func_info], dtype=np.int64)] if prog.func_info else np.empty(0, np.int64)
        k = _keep_last(fi_pos, total)
        result.func_info = [FuncInfo(int(fi_pos[i]), prog.func_info[i].type_id) for i in k.tolist()]
    if prog.line_info is not None:
        li_pos = idx_map[np.array([r.insn_off for r in prog.line_info], dtype=np.int64)] if prog.line_info else np.empty(0, np.int64)
        k = _keep_last(li_pos, total)
        result.line_info = [prog.line_info[i]._replace(insn_off=int(li_pos[i])) for i in k.tolist()]
    if pl._aux_used:
        aux_nodes = np.full(len(pl._orig), None, dtype=object)  # _aux stops at its last value
        aux_nodes[: len(pl._aux)] = pl._aux
        aux_out = np.full(total, None, dtype=object)
        aux_out[own_slot[order]] = aux_nodes[order]
        for b in blocks:
            for slot, value in b.aux:
                same = np.empty(len(b.sites), dtype=object)
                same.fill(value)  # one object at every site (a sequence must not be spread)
                aux_out[land[b.sites] + slot] = same
        if prog.aux is not None:
            # The high half of an untouched original ld_imm64 keeps its own aux.
            dirty = np.frombuffer(bytes(pl._dirty), dtype=np.uint8)  # originals only
            w_ids = orig_ids[wide & alive]
            w_ids = w_ids[dirty[w_ids] == 0]
            if len(w_ids):
                base_aux = np.empty(nslots, dtype=object)
                base_aux[:] = prog.aux
                aux_out[own_slot[w_ids] + 1] = base_aux[base_slot[w_ids - 1] + 1]
        result.aux = aux_out.tolist()
