"""One prepared patch applied to the node store: the seed's replace, insert and delete, one at a time.

These are the simple operations every `PatchList` call ends in (the fast
paths in `bpfpatch.patch.fast` do the same for many sites at once, and are
tested against these).  Each is O(patch size): new nodes are appended to the
columns and linked in; nothing is renumbered.
"""

from __future__ import annotations

from array import array
from typing import Callable

import numpy as np

from bpfpatch.errors import PatchError
from bpfpatch.isa import GOTOL, INVERTED_JMP, Insn, InsnClass, JmpOp, is_subprog_ref
from bpfpatch.isa.opcodes import OP_MASK
from bpfpatch.patch.buffer import Prepared, ToItem, ToNext
from bpfpatch.patch.store import DELETED, END, ID_DTYPE, NO_ANCHOR, CallIndex, NodeStore, view


def point_refs(store: NodeStore, prep: Prepared, ids: list[int], after: int) -> None:
    """Point the new nodes' references at their targets (`ids`: the node of each item)."""
    for ref in prep.refs:
        if isinstance(ref, ToItem):
            dest = ids[ref.dest]
        elif isinstance(ref, ToNext):
            dest = after
        else:
            dest = ref.node
        store.point(ids[ref.item], dest, ref.subprog)


def replace_now(store: NodeStore, x: int, prep: Prepared, retarget: bool) -> None:
    """Node `x` becomes the patch's last instruction; the others are linked before it.

    Jumps to `x` move onto the first new node (``retarget``, kernel
    semantics) or stay on `x`.  `x` keeps its aux unless the last item has some.
    """
    k = len(prep.w0) - 1
    base = len(store.orig)
    if k:
        store.new_chain(prep.head_w0, prep.head_w1, prep.head_wide, prep.head_aux if prep.any_aux else None)
        store.link_before(base, base + k - 1, x if retarget else store.before_deleted_run(x))
        if retarget:
            store.move_anchor(x, base)
        store.live += k
    store.set_words(x, prep.last_w0, prep.last_w1, prep.last_wide)
    store.target[x] = NO_ANCHOR
    if prep.aux[k] is not None:
        store.set_aux(x, prep.aux[k])
    if prep.refs:
        point_refs(store, prep, [*range(base, base + k), x], store.next[x])


def insert_before(store: NodeStore, x: int, prep: Prepared, retarget: bool) -> int:
    """Link the patch before node `x`; return the last new node."""
    base = store.new_chain(prep.w0, prep.w1, prep.wide, prep.aux if prep.any_aux else None)
    last = base + len(prep.w0) - 1
    store.link_before(base, last, x if retarget else store.before_deleted_run(x))
    if retarget:
        store.move_anchor(x, base)
    store.live += len(prep.w0)
    if prep.refs:
        point_refs(store, prep, list(range(base, last + 1)), x)
    return last


def insert_after(store: NodeStore, x: int, prep: Prepared) -> int:
    """Link the patch after node `x`; return the last new node."""
    base = store.new_chain(prep.w0, prep.w1, prep.wide, prep.aux if prep.any_aux else None)
    last = base + len(prep.w0) - 1
    store.link_after(base, last, x)
    store.live += len(prep.w0)
    if prep.refs:
        point_refs(store, prep, list(range(base, last + 1)), store.next[last])
    return last


def delete_now(store: NodeStore, x: int) -> None:
    """Delete node `x` (references to it land on the next live node), refusing what would strand a reference.

    Refused: the last instruction of the program; the last instruction of a
    subprogram a call still targets; a node some live jump lands on when no
    live node follows it (the jump would have nowhere to land).
    """
    nxt = store.next_live(x)
    if store.live == 1:
        raise PatchError("delete: cannot delete the last instruction of the program")
    a = store.subprog_land.get(x)
    last_of_subprog = a is not None and (nxt == END or nxt in store.subprog_land)
    if last_of_subprog and called_on(store, x):
        raise PatchError(f"delete: node {x} is the only instruction left of a subprogram that a call still targets")
    if nxt == END and referenced(store, x):
        raise PatchError(f"delete: node {x} is the last instruction, and a jump still lands on it")
    # Nothing is refused past this point.
    if a is not None:
        del store.subprog_land[x]
        if not last_of_subprog:
            store.subprog_land[nxt] = a
    store.orig[x] = DELETED
    store.live -= 1


def referenced(store: NodeStore, nid: int) -> bool:
    """Does a live node's reference land on node `nid`?  (Vectorized; asked when deleting the last node.)"""
    run = array("q", [nid])  # 8 bytes a node: the run can be the whole program (its dead tail)
    p = store.prev[nid]
    while p > 0 and store.orig[p] == DELETED:  # deleted nodes right before `nid` forward to it
        run.append(p)
        p = store.prev[p]
    target, orig, an = view(store.target), view(store.orig), view(store.anchor_node)
    users = np.flatnonzero((target >= 0) & (orig != DELETED))
    users = users[users != nid]
    hit = bool(np.isin(an[target[users]], run).any())
    del target, orig, an
    return hit


def called_on(store: NodeStore, nid: int) -> bool:
    """Does a live call or pseudo-func load still land on node `nid`?

    Only asked when a deletion would remove the last instruction of the
    subprogram that lands on `nid`.  Calls target subprogram starts, so the
    candidates are that subprogram's anchor and `nid`'s own; anchors of calls
    elsewhere (rare) are looked at one by one.  The call sites of an anchor
    come from a reverse index built once (`call_sites`); an anchor found with
    no live call is dropped from the called set, so a chain of dead
    subprograms costs one look per subprogram, not a scan each.
    """
    called = store.called_anchors
    cands = {a for a in (store.subprog_land.get(nid), store.node_anchor[nid]) if a is not None and a in called}
    if store.odd_called is None:
        store.odd_called = called.without(store.subprog_land.values(), store.subprog_anchors)
    an = store.anchor_node
    cands |= {a for a in store.odd_called if a in called and store.landing(an[a]) == nid}
    if not cands:
        return False
    sites = call_sites(store)
    target, orig = store.target, store.orig
    for a in cands:
        for s in sites.sites(a):
            if orig[s] != DELETED and target[s] == a:
                insn = store.insn(s)
                if is_subprog_ref(insn[0], insn[2]):
                    return True
    for a in cands:  # nothing calls them any more (a new call re-adds them, see NodeStore.point)
        called.discard(a)
        store.odd_called.discard(a)
    return False


def call_sites(store: NodeStore) -> CallIndex:
    """Called anchor -> node ids whose reference points at it (built once, kept by `NodeStore.point`)."""
    if store.call_index is None:
        target = view(store.target)
        called = store.called_anchors.as_array()
        src = np.flatnonzero(np.isin(target, called))
        store.call_index = CallIndex(target[src], src)
        del target
    return store.call_index


def relax(store: NodeStore, node_ids: list[int], note_insert: Callable[[np.ndarray, int, int], None] | None = None) -> None:
    """Rewrite jumps whose offset overflowed 16 bits into gotol forms (relinking the list).

    ``ja`` becomes ``gotol``; a conditional jump becomes its inverse over a
    ``gotol`` (``jset`` / ``may_goto``, which have no inverse, jump to the
    ``gotol`` over a ``goto`` to the next instruction).
    """
    node_ids = _relax_common(store, node_ids, note_insert)
    for nid in node_ids:
        insn = store.insn(nid)
        a = store.target[nid]
        op = insn.code & OP_MASK
        if insn.code == InsnClass.JMP | JmpOp.JA:
            store.set_insn(nid, Insn(GOTOL))
            continue
        succ = store.next[nid]
        if succ == END:
            raise PatchError(f"node {nid}: cannot relax a conditional jump at the end of the program")
        g = store.new_node(Insn(GOTOL))
        store.target[g] = a
        inv = INVERTED_JMP.get(JmpOp(op)) if op != JmpOp.JCOND else None
        if inv is not None:
            # if !cond goto <after gotol>; gotol <target>
            store.set_insn(nid, insn._replace(code=(insn.code & ~OP_MASK) | inv, off=0))
            store.link_after(g, g, nid)
            store.target[nid] = store.anchor_of(succ)
        else:
            # jset/may_goto: if cond goto <gotol>; goto <after gotol>; gotol <target>
            j = store.new_node(Insn(InsnClass.JMP | JmpOp.JA))
            store.next[j] = g
            store.prev[g] = j
            store.link_after(j, g, nid)
            store.target[j] = store.anchor_of(succ)
            store.target[nid] = store.anchor_of(g)
            store.live += 1
        store.live += 1


# Per opcode: the inverted conditional jump's opcode, or 0 (not a conditional jump with an inverse).
_INVERTED_CODE = np.zeros(256, dtype=np.uint64)
for _code in range(256):
    if _code & 0x07 in (InsnClass.JMP, InsnClass.JMP32) and (_code & OP_MASK) != JmpOp.JCOND and (_code & OP_MASK) in INVERTED_JMP:
        _INVERTED_CODE[_code] = (_code & ~OP_MASK) | INVERTED_JMP[JmpOp(_code & OP_MASK)]
del _code
_KEEP_REGS_IMM = np.uint64(0xFFFFFFFF0000FF00)  # a word without its opcode and offset


def _relax_common(store: NodeStore, node_ids: list[int], note_insert: Callable[[np.ndarray, int, int], None] | None) -> list[int]:
    """`relax` of every ``ja`` and invertible conditional jump at once (NumPy over the columns);
    returns the rest (``jset``, ``may_goto``), which `relax` rewrites one at a time.

    The same list as one at a time: each jump's successor is read before any link
    changes (a successor is never another site's new node); the new ``gotol`` nodes
    get ids in the order of their sites (before those of the jumps left to `relax`).
    `note_insert(nodes, first_id, 1)` is told that a new node goes right before each of
    `nodes` (the sites' successors), before the columns grow: the list order cache.
    """
    if len(node_ids) < 16:
        return node_ids
    ids = np.asarray(node_ids, dtype=np.int64)
    w0 = view(store.w0, np.uint64)[ids]
    code = (w0 & np.uint64(0xFF)).astype(np.int64)
    ja = code == (InsnClass.JMP | JmpOp.JA)
    inv = _INVERTED_CODE[code]
    cond = (inv != 0) & ~ja
    rest = ids[~(ja | cond)].tolist()
    sites = ids[cond]
    succ = view(store.next)[sites].astype(np.int64)
    if (succ == END).any():
        raise PatchError(f"node {int(sites[np.argmax(succ == END)])}: cannot relax a conditional jump at the end of the program")
    jas = ids[ja]
    view(store.w0, np.uint64)[jas] = np.uint64(GOTOL)
    view(store.w1, np.uint64)[jas] = 0
    view(store.wide, np.uint8)[jas] = 0
    dirty = view(store.dirty, np.uint8)
    dirty[jas[jas < len(dirty)]] = 1
    m = len(sites)
    if m:
        # if !cond goto <after gotol>; gotol <target>
        view(store.w0, np.uint64)[sites] = (w0[cond] & _KEEP_REGS_IMM) | inv[cond]
        dirty[sites[sites < len(dirty)]] = 1
        del dirty
        old_target = view(store.target)[sites].copy()
        base = len(store.orig)
        g = np.arange(base, base + m, dtype=np.int64)
        # the successors' anchors (created where missing; each successor is one site's)
        anchors = view(store.node_anchor)[succ].astype(np.int64)
        missing = np.flatnonzero(anchors == NO_ANCHOR)
        first_anchor = len(store.anchor_node)
        anchors[missing] = first_anchor + np.arange(len(missing))
        store.anchor_node.frombytes(succ[missing].astype(ID_DTYPE).tobytes())
        view(store.node_anchor)[succ[missing]] = anchors[missing]
        # the new gotol nodes: columns extended in one piece each
        if note_insert is not None:
            note_insert(succ, base, 1)
        minus = np.full(m, -1, dtype=ID_DTYPE).tobytes()
        store.next.frombytes(succ.astype(ID_DTYPE).tobytes())
        store.prev.frombytes(sites.astype(ID_DTYPE).tobytes())
        store.w0.frombytes(np.full(m, GOTOL, dtype=np.uint64).tobytes())
        store.w1.frombytes(bytes(8 * m))
        store.wide.extend(bytes(m))
        store.orig.frombytes(minus)
        store.node_anchor.frombytes(minus)
        store.target.frombytes(old_target.tobytes())
        nxt, prv, tgt = view(store.next), view(store.prev), view(store.target)
        nxt[sites] = g
        prv[succ] = g
        tgt[sites] = anchors
        del nxt, prv, tgt
        store.live += m
    return rest
