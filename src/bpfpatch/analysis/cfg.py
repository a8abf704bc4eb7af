"""Control flow of a patch list: basic blocks, CFG, call graph, dominators, liveness, stack.

Everything works on a `PatchList`'s public API (live nodes in order,
``node.insn``, ``node.target``), so it sees the program as the passes have
patched it so far::

    >>> g = FlowGraph(pl)
    >>> for block in g.blocks:            # in list order; block.nodes, succs, preds, subprog
    ...     free = g.free_registers(block.first, 2)   # registers dead at the block's start
    >>> g.subprog_of(node); g.dominators(0); g.call_graph; g.stack_depth(0)

* A **subprogram** starts at the entry, at every pseudo-call / ``ld_func``
  target, at every original subprogram start and function symbol; it runs
  to the next start in list order (the kernel's layout rule).
* A **basic block** starts at a subprogram start, a jump target, or after a
  jump / exit; it ends at a jump, an exit, or before a leader.  Calls do not
  end blocks (they return).
* **Liveness** is the classic backward data-flow over registers r0-r10,
  intraprocedural: a call reads r1-r5 and writes r0-r5; ``exit`` reads r0;
  legacy packet loads read r6 (their implicit context) and write r0-r5.
  Register r10 (the frame pointer) is never free.
* **Dominators**: Cooper, Harvey and Kennedy's iterative algorithm over the
  blocks of one subprogram in reverse post-order.
* **Stack depth**: the deepest byte below r10 that the subprogram addresses,
  directly (``*(u64 *)(r10 - 8)``) or through a pointer derived from r10 by
  constant additions; a frame pointer that escapes otherwise makes the depth
  the kernel's maximum (512), so a free slot is never one the program uses.

When the verification layer has run, its facts (`InsnAux.seen` on the
nodes) tell which blocks some verified path reaches: `Block.seen`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bpfpatch.analysis.liveness import ENDS_BLOCK, HAS_TARGET_EDGE, NO_FALL, Liveness, insn_liveness, regs_of, uses_defs
from bpfpatch.isa import KIND_OF, Insn, InsnClass, Kind
from bpfpatch.isa import AtomicOp
from bpfpatch.patch import Node, PatchList

MAX_STACK = 512
FP = 10
ALL_REGS = frozenset(range(11))
# Registers a builder may hand out, callee-saved first (they survive calls).
SCRATCH_ORDER = (9, 8, 7, 6, 5, 4, 3, 2, 1, 0)
# The block rule per opcode (`bpfpatch.analysis.liveness`), as lists: read once per instruction.
_ENDS, _JUMPS, _STOPS = ENDS_BLOCK.tolist(), HAS_TARGET_EDGE.tolist(), NO_FALL.tolist()

@dataclass
class Block:
    """One basic block: `nodes` in order, its edges as block indices, its subprogram."""

    index: int
    nodes: list[Node]
    subprog: int
    succs: list[int] = field(default_factory=list)
    preds: list[int] = field(default_factory=list)
    seen: bool | None = None  # the verification layer's verdict, None when it has not run

    @property
    def first(self) -> Node:
        """The block's leader."""
        return self.nodes[0]

    @property
    def last(self) -> Node:
        """The block's final instruction (its jump or exit, if it has one)."""
        return self.nodes[-1]


class FlowGraph:
    """Blocks, CFG, call graph, dominators, liveness and stack use of a patch list, computed once.

    The graph describes the list as it was when built: after patching, build a new one.
    """

    def __init__(self, pl: PatchList) -> None:
        self.pl = pl
        self.nodes: list[Node] = list(pl)
        self.index: dict[Node, int] = {n: i for i, n in enumerate(self.nodes)}
        self.insns: list[Insn] = [n.insn for n in self.nodes]
        self.target: list[int] = [self._target_index(n) for n in self.nodes]
        self.subprog_starts: list[int] = self._subprog_starts()
        self.blocks: list[Block] = []
        self.block_of: list[int] = [0] * len(self.nodes)
        self._build_blocks()
        self._live: Liveness | None = None
        self._idom: dict[int, dict[int, int]] = {}

    # --- structure -----------------------------------------------------------------

    def _target_index(self, node: Node) -> int:
        t = node.target
        return -1 if t is None else self.index.get(t, -1)

    def _subprog_starts(self) -> list[int]:
        starts = {0} if self.nodes else set()
        for i, insn in enumerate(self.insns):
            if self.target[i] >= 0 and (insn.is_pseudo_call or insn.is_pseudo_func):
                starts.add(self.target[i])
        prog = self.pl.program
        marks = list(prog.subprogs) + [s.slot for s in prog.meta.get("symbols", ()) if s.type == "STT_FUNC"]
        for slot in marks:
            try:
                node = self.pl.landing(self.pl.node_at(slot))
            except Exception:  # the second half of an ld_imm64, outside the program
                continue
            if node is not None and node in self.index:
                starts.add(self.index[node])
        return sorted(starts)

    def _build_blocks(self) -> None:
        n = len(self.nodes)
        if not n:
            return
        leader = [False] * n
        for s in self.subprog_starts:
            leader[s] = True
        for i, insn in enumerate(self.insns):
            if _ENDS[insn.code]:
                if self.target[i] >= 0 and _JUMPS[insn.code]:
                    leader[self.target[i]] = True
                if i + 1 < n:
                    leader[i + 1] = True
        sub_of = [0] * n
        k = 0
        for i in range(n):
            while k + 1 < len(self.subprog_starts) and self.subprog_starts[k + 1] <= i:
                k += 1
            sub_of[i] = k
        start = 0
        for i in range(1, n + 1):
            if i == n or leader[i]:
                b = Block(len(self.blocks), self.nodes[start:i], sub_of[start])
                for j in range(start, i):
                    self.block_of[j] = b.index
                self.blocks.append(b)
                start = i
        for b in self.blocks:
            last = self.index[b.last]
            code = self.insns[last].code
            out: list[int] = []
            if _JUMPS[code] and self.target[last] >= 0:
                out.append(self.block_of[self.target[last]])
            if not _STOPS[code] and last + 1 < n and sub_of[last + 1] == b.subprog:
                nxt = self.block_of[last + 1]
                if nxt not in out:
                    out.append(nxt)
                else:  # a conditional jump to the next instruction: one edge, listed once
                    pass
            b.succs = out
            for s in out:
                self.blocks[s].preds.append(b.index)
            aux = [getattr(nd.aux, "seen", None) for nd in b.nodes]
            if any(a is not None for a in aux):
                b.seen = any(bool(a) for a in aux)

    def subprog_of(self, node: Node) -> int:
        """The index of the subprogram (in `subprog_starts` order) that holds `node`."""
        return self.blocks[self.block_of[self.index[node]]].subprog

    def block_at(self, node: Node) -> Block:
        """The block that holds `node`."""
        return self.blocks[self.block_of[self.index[node]]]

    def subprog_blocks(self, subprog: int) -> list[Block]:
        """The blocks of one subprogram, in list order (the first is its entry)."""
        return [b for b in self.blocks if b.subprog == subprog]

    @property
    def edges(self) -> list[tuple[int, int]]:
        """Every CFG edge as (from block, to block), in block order."""
        return [(b.index, s) for b in self.blocks for s in b.succs]

    @property
    def call_graph(self) -> dict[int, set[int]]:
        """Subprogram -> the subprograms it calls (pseudo calls and ``ld_func`` callbacks)."""
        graph: dict[int, set[int]] = {k: set() for k in range(len(self.subprog_starts))}
        for i, insn in enumerate(self.insns):
            if self.target[i] >= 0 and (insn.is_pseudo_call or insn.is_pseudo_func):
                graph[self.subprog_of(self.nodes[i])].add(self.subprog_of(self.nodes[self.target[i]]))
        return graph

    # --- dominators ------------------------------------------------------------------

    def dominators(self, subprog: int = 0) -> dict[int, int]:
        """Immediate dominators of the subprogram's reachable blocks: block -> idom (the entry maps to itself)."""
        if subprog not in self._idom:
            self._idom[subprog] = self._dominators(subprog)
        return self._idom[subprog]

    def _dominators(self, subprog: int) -> dict[int, int]:
        blocks = self.subprog_blocks(subprog)
        if not blocks:
            return {}
        entry = blocks[0].index
        order: list[int] = []  # post-order
        seen = {entry}
        stack = [(entry, iter(self.blocks[entry].succs))]
        while stack:
            b, it = stack[-1]
            for s in it:
                if s not in seen:
                    seen.add(s)
                    stack.append((s, iter(self.blocks[s].succs)))
                    break
            else:
                order.append(b)
                stack.pop()
        rpo = order[::-1]
        num = {b: i for i, b in enumerate(rpo)}
        idom: dict[int, int] = {entry: entry}

        def intersect(a: int, b: int) -> int:
            while a != b:
                while num[a] > num[b]:
                    a = idom[a]
                while num[b] > num[a]:
                    b = idom[b]
            return a

        changed = True
        while changed:
            changed = False
            for b in rpo[1:]:
                preds = [p for p in self.blocks[b].preds if p in idom]
                if not preds:
                    continue
                new = preds[0]
                for p in preds[1:]:
                    new = intersect(p, new)
                if idom.get(b) != new:
                    idom[b] = new
                    changed = True
        return idom

    def dominates(self, a: int, b: int) -> bool:
        """Does block `a` dominate block `b` (same subprogram, b reachable)?"""
        idom = self.dominators(self.blocks[b].subprog)
        if b not in idom:
            return False
        while True:
            if b == a:
                return True
            if idom[b] == b:
                return False
            b = idom[b]

    # --- liveness --------------------------------------------------------------------

    @property
    def liveness(self) -> Liveness:
        """Registers live before / after each position of `nodes` (`bpfpatch.analysis.liveness`), solved once."""
        if self._live is None:
            # Control falls through within a subprogram only (the next one starts a new frame).
            within = bytearray(b"\x01") * len(self.nodes)
            blocks = self.blocks
            for k, b in enumerate(blocks):
                within[self.index[b.last]] = k + 1 < len(blocks) and blocks[k + 1].subprog == b.subprog
            self._live = insn_liveness(self.insns, self.target, within)
        return self._live

    def live_before(self, node: Node) -> frozenset[int]:
        """Registers whose value some path reads at or after `node` before writing it."""
        return regs_of(self._live_mask(node))

    def live_after(self, node: Node) -> frozenset[int]:
        """Registers live just after `node` executes (on its fall-through or jump)."""
        return regs_of(self.liveness.out(self.index[node]))

    def _live_mask(self, node: Node) -> int:
        return self.liveness.live_in[self.index[node]]

    def free_registers(self, node: Node, n: int = 1, *, region: list[Node] | None = None,
                       exclude: frozenset[int] | set[int] = frozenset()) -> list[int]:
        """Up to `n` registers (r9 first, never r10) dead before `node` and untouched in `region`.

        `region` (nodes in order starting at `node`): registers it reads or
        writes are excluded too, so code inserted before `node` may use the
        result across the region; so are those in `exclude` (registers the
        caller has taken for itself).  Fewer than `n` come back when fewer are free.
        """
        live = self._live_mask(node)
        for other in region or ():
            u, d = uses_defs(other.insn)
            live |= u | d
        live |= 1 << FP
        return [r for r in SCRATCH_ORDER if not live >> r & 1 and r not in exclude][:n]

    def unused_registers(self, subprog: int = 0) -> list[int]:
        """Registers no instruction of the subprogram names, that no call there clobbers (r9 first).

        A tool may keep its own value in one for the whole subprogram (set at
        its entry): r6-r9 survive calls; r1-r5 only in a subprogram without calls.
        """
        named = 1 << FP
        calls = False
        for blk in self.subprog_blocks(subprog):
            for node in blk.nodes:
                insn = self.insns[self.index[node]]
                u, d = uses_defs(insn)
                named |= u | d | (1 << insn.dst) | (1 << insn.src)
                calls = calls or KIND_OF[insn.code] in (Kind.CALL, Kind.LD_ABS, Kind.LD_IND)
        order = (9, 8, 7, 6) if calls else SCRATCH_ORDER
        return [r for r in order if not named >> r & 1 and r != 0]

    # --- stack -----------------------------------------------------------------------

    def stack_depth(self, subprog: int = 0) -> int:
        """Bytes below r10 the subprogram may touch (rounded up to 8; 512 when a frame pointer escapes)."""
        deepest = 0
        fp_regs: dict[int, int] = {}
        escaped = False
        for b in self.subprog_blocks(subprog):
            fp_regs = {FP: 0}  # per block: constant offsets from r10
            for node in b.nodes:
                insn = self.insns[self.index[node]]
                kind = KIND_OF[insn.code]
                base = insn.src if kind in (Kind.LDX, Kind.LDSX) or (kind == Kind.ATOMIC and insn.imm == AtomicOp.LOAD_ACQ) else insn.dst
                if kind in (Kind.LDX, Kind.LDSX, Kind.ST, Kind.STX, Kind.ATOMIC) and base in fp_regs:
                    deepest = max(deepest, -(fp_regs[base] + insn.off))
                u, d = uses_defs(insn)
                # a frame pointer copied, moved by a constant, or passed to a call
                if kind == Kind.ALU_X and insn.code & 0xF0 == 0xB0 and insn.cls == InsnClass.ALU64 and insn.src in fp_regs:
                    fp_regs[insn.dst] = fp_regs[insn.src]
                    continue
                if kind == Kind.ALU_K and insn.cls == InsnClass.ALU64 and insn.dst in fp_regs and insn.dst != FP:
                    op = insn.code & 0xF0
                    if op in (0x00, 0x10):  # add / sub
                        fp_regs[insn.dst] += insn.imm if op == 0x00 else -insn.imm
                        deepest = max(deepest, -fp_regs[insn.dst])
                        continue
                if kind in (Kind.STX, Kind.ATOMIC) and insn.src in fp_regs:
                    escaped = True  # a pointer to the stack stored: its later uses are not followed
                if kind == Kind.CALL:
                    for r in range(1, 6):
                        if r in fp_regs:
                            deepest = max(deepest, -fp_regs[r])
                elif kind == Kind.ALU_X and insn.src in fp_regs:
                    escaped = True  # a frame pointer mixed into arithmetic we do not follow
                elif kind in (Kind.ALU_K, Kind.NEG, Kind.END) and insn.dst in fp_regs and insn.dst != FP:
                    escaped = True
                for r in regs_of(d):
                    if r != FP:
                        fp_regs.pop(r, None)
            # pointers derived in one block and used in another: conservatively escaped
            if len(fp_regs) > 1 and b.succs:
                live = self.liveness.out(self.index[b.last])
                if any(live >> r & 1 for r in fp_regs if r != FP):
                    escaped = True
        if escaped:
            return MAX_STACK
        return min(MAX_STACK, (max(0, deepest) + 7) // 8 * 8)

    def free_stack_slots(self, subprog: int = 0, n: int = 1) -> list[int]:
        """Up to `n` 8-byte slots (offsets from r10, e.g. -16) below the subprogram's stack use."""
        depth = self.stack_depth(subprog)
        return [-(depth + 8 * (k + 1)) for k in range(n) if depth + 8 * (k + 1) <= MAX_STACK]


def entry_of_subprogs(pl: PatchList) -> list[Node]:
    """The first node of every subprogram, in list order."""
    g = FlowGraph(pl)
    return [g.nodes[i] for i in g.subprog_starts]


__all__ = ["ALL_REGS", "Block", "FlowGraph", "MAX_STACK", "SCRATCH_ORDER", "entry_of_subprogs", "uses_defs"]
