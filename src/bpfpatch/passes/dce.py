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

from bpfpatch.isa import KIND, KIND_OF, Kind
from bpfpatch.isa.insn import ja
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
        if has_facts(pl):
            # The verifier's own `seen` (the kernel's model exactly); inserted nodes count as seen.
            nodes = list(pl)
            seen = [f.seen if (f := facts_of(n)) is not None else True for n in nodes]
        else:
            flow = analyze(pl)
            nodes, seen = flow.nodes, flow.seen
        remove_dead_code(pl, nodes, seen)

    def _run_unconditional(self, pl: PatchList, ids: np.ndarray, w0: np.ndarray) -> None:
        """Without conditional jumps nothing is decided by constants (step 1 has nothing
        to do) and, without calls, reachability is plain CFG reachability
        (vectorized, `cfg.reachable`)."""
        ids, seen = reachable(pl, ids, w0)
        _delete_dead(pl, [Node(pl, int(i)) for i in ids[~seen]])
        # Deleting changes no word: the live nodes' kinds come from the words read once.
        kind = np.take(KIND, (w0[seen] & np.uint64(0xFF)).astype(np.uint8))
        jumps = ids[seen][np.isin(kind, (Kind.JA, Kind.MAY_GOTO))]
        _remove_jumps_to_next(pl, [Node(pl, int(i)) for i in jumps])


def remove_dead_code(pl: PatchList, nodes: list[Node], seen: list[bool]) -> None:
    """The kernel's three dead-code steps, given `seen` per node of `nodes` (the live nodes in order).

    opt_hard_wire_dead_code_branches, opt_remove_dead_code, opt_remove_nops.
    """
    index = {n.id: i for i, n in enumerate(nodes)}
    # 1. Hard-wire conditional jumps with one dead edge.
    for i, node in enumerate(nodes):
        if not seen[i] or KIND_OF[node.insn.code] not in (Kind.JCOND_K, Kind.JCOND_X):
            continue
        # The kernel looks at whether the successor INSTRUCTIONS are seen, not the edges.
        fall_seen = i + 1 < len(nodes) and seen[i + 1]
        target = node.target
        t = index.get(target.id, -1) if target is not None else -1
        if not fall_seen:
            pl.replace(node, [PatchInsn(ja(0), target=target)], retarget=True)
        elif t >= 0 and not seen[t]:
            pl.replace(node, [ja(0)])  # goto +0: removed in step 3
    # 2. Remove what no path reaches.
    _delete_dead(pl, [node for i, node in enumerate(nodes) if not seen[i]])
    # 3. Remove jumps that land on the next instruction.
    _remove_jumps_to_next(pl, list(pl))


def _delete_dead(pl: PatchList, dead: list[Node]) -> None:
    """Step 2: delete unreached nodes, calls and callback loads first.

    A dead subprogram's callers are all dead, but may come after it in the
    list, and a subprogram cannot lose its last instruction while a live call
    still targets it.
    """
    for node in dead:
        if node.insn.is_pseudo_call or node.insn.is_pseudo_func:
            pl.delete(node)
    for node in dead:
        if not (node.insn.is_pseudo_call or node.insn.is_pseudo_func):
            pl.delete(node)


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
