"""dce: dead-code removal the way the kernel's verifier finishes a program.

With ``seen`` = the instructions some path reaches (CFG reachability plus
constant-folded branch outcomes, see `cfg.analyze`), in the kernel's order:

1. a conditional jump whose fall-through is never taken becomes ``goto
   <its target>``; else one whose target is never taken becomes ``goto +0``;
2. every instruction never reached is deleted (whole subprograms included:
   subprogram starts, func_info and line_info follow in `linearize`);
3. every ``goto +0`` (and ``may_goto +0``) is deleted, in one forward pass.

    r0 = 1                     r0 = 1
    if r0 == 1 goto +1    ->   exit
    r0 = 2
    exit
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from bpfpatch.isa import KIND, KIND_OF, Kind, Ref, refs_of_words
from bpfpatch.isa.build import ja
from bpfpatch.passes.base import PassContext
from bpfpatch.passes.cfg import analyze, needs_path_analysis, reachable
from bpfpatch.passes.facts import facts_of, has_facts
from bpfpatch.patch import Node, PatchInsn, PatchList


class DeadCode:
    """Hard-wire decided branches, remove unreachable code and jumps to the next instruction."""

    name: ClassVar[str] = "dce"

    def run(self, pl: PatchList, ctx: PassContext) -> None:
        ids = pl.live_ids()
        w0, _ = pl.words(ids)
        if not needs_path_analysis(pl, w0) and not has_facts(pl):
            self._run_unconditional(pl, ids, w0)
            return
        del ids, w0, _  # 24 bytes an instruction the walk below does not need
        if has_facts(pl):
            # The verifier's own `seen` (the kernel's model exactly); inserted nodes count as seen.
            nodes = list(pl)
            seen = [f.seen if (f := facts_of(n)) is not None else True for n in nodes]
        else:
            flow = analyze(pl)
            nodes, seen = flow.ids, flow.seen_mask
        remove_dead_code(pl, nodes, seen)

    def _run_unconditional(self, pl: PatchList, ids: np.ndarray, w0: np.ndarray) -> None:
        """Without conditional jumps nothing is decided by constants (step 1 has nothing
        to do) and, without calls, reachability is plain CFG reachability
        (vectorized, `cfg.reachable`)."""
        ids, seen = reachable(pl, ids, w0)
        _delete_dead(pl, ids[~seen])
        # Deleting changes no word: the live nodes' kinds come from the words read once.
        kind = np.take(KIND, (w0[seen] & np.uint64(0xFF)).astype(np.uint8))
        jumps = ids[seen][np.isin(kind, (Kind.JA, Kind.MAY_GOTO))]
        _remove_jumps_to_next(pl, [Node(pl, int(i)) for i in jumps])


def remove_dead_code(pl: PatchList, nodes: "list[Node] | np.ndarray", seen: "list[bool] | np.ndarray") -> None:
    """The kernel's three dead-code steps, given `seen` per node of `nodes` (the live nodes in order).

    opt_hard_wire_dead_code_branches, opt_remove_dead_code, opt_remove_nops.
    The sites are found with NumPy over the list's words; only conditional
    jumps with a dead successor, dead nodes and ``goto +0`` get a Python step.
    """
    ids = nodes if isinstance(nodes, np.ndarray) else np.fromiter((n.id for n in nodes), dtype=np.int64, count=len(nodes))
    seen = np.asarray(seen, dtype=bool)
    count = len(ids)
    if not count:
        return
    # (a byte a node id and the few conditional jumps' targets, not position columns of every node;
    # each dropped once read: step 3's are made while the list is being changed)
    cond = np.flatnonzero(np.isin(_kinds(pl, ids), (Kind.JCOND_K, Kind.JCOND_X)) & seen)
    # 1. Hard-wire conditional jumps with one dead successor INSTRUCTION (not edge).
    fall_seen = np.zeros(len(cond), dtype=bool)
    inner = cond + 1 < count
    fall_seen[inner] = seen[cond[inner] + 1]
    mark = np.zeros(pl.id_bound, dtype=np.int8)  # per node id: 1 seen, 2 not seen, 0 not among `ids`
    mark[ids] = np.where(seen, 1, 2)
    dest = pl.target_ids(ids[cond])
    target_dead = (dest >= 0) & (mark[np.maximum(dest, 0)] == 2)
    del mark, dest
    no_fall, no_target = cond[~fall_seen], cond[fall_seen & target_dead]
    del cond, fall_seen, target_dead
    for i in no_fall.tolist():
        node = Node(pl, int(ids[i]))
        pl.replace(node, [PatchInsn(ja(0), target=node.target)], retarget=True)
    for i in no_target.tolist():
        pl.replace(Node(pl, int(ids[i])), [ja(0)])  # goto +0: removed in step 3
    # 2. Remove what no path reaches.
    dead = ids[~seen]
    if len(dead):
        _delete_dead(pl, dead)
    del dead
    # 3. Remove jumps that land on the next instruction: one forward pass, as the kernel.
    #    (A goto removed here cannot make an earlier one land on its own next node: it is
    #    already passed.)
    ids = pl.live_ids()
    jumps = np.flatnonzero(np.isin(_kinds(pl, ids), (Kind.JA, Kind.MAY_GOTO)))
    jumps = jumps[jumps + 1 < len(ids)]  # the last node's jump has no next node to land on
    nops = jumps[pl.target_ids(ids[jumps]) == ids[jumps + 1]]
    for i in nops.tolist():
        pl.delete(Node(pl, int(ids[i])))


def _kinds(pl: PatchList, ids: np.ndarray) -> np.ndarray:
    """Each node's `Kind` (its opcode's), read from the list's first words (the second is dropped at once)."""
    return np.take(KIND, (pl.words(ids)[0] & np.uint64(0xFF)).astype(np.uint8))


def _delete_dead(pl: PatchList, dead: np.ndarray) -> None:
    """Step 2: delete unreached nodes (ids in list order), calls and callback loads first.

    A dead subprogram's callers are all dead, but may come after it in the
    list, and a subprogram cannot lose its last instruction while a live call
    still targets it.  A node handle is made for each delete only (no list of them).
    """
    ref = refs_of_words(pl.words(dead)[0])
    first = (ref == Ref.SUBPROG) | (ref == Ref.FUNC)
    for group in (dead[first], dead[~first]):
        for k in range(len(group)):
            pl.delete(Node(pl, int(group[k])))


def _remove_jumps_to_next(pl: PatchList, nodes: list[Node]) -> None:
    """Step 3: delete every ``goto +0`` / ``may_goto +0`` among `nodes`, in list order."""
    for node in nodes:
        if node.deleted:
            continue
        kind = KIND_OF[node.insn.code]
        if kind not in (Kind.JA, Kind.MAY_GOTO) or node.target is None:
            continue
        if pl.landing(node.target) == node.next:
            pl.delete(node)


PASS = DeadCode
