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
  end blocks (they return).  The rule per opcode is
  `bpfpatch.analysis.liveness.ENDS_BLOCK`; coverage counts these blocks.
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

from array import array
from collections.abc import Iterator, Mapping, Sequence
from operator import index as _as_index

import numpy as np

from bpfpatch.analysis.liveness import (ENDS_BLOCK, HAS_TARGET_EDGE, NO_FALL, Liveness, regs_of, solve, target_positions, uses_defs,
                                        word_masks)
from bpfpatch.isa import KIND_OF, Insn, InsnClass, Kind
from bpfpatch.isa import AtomicOp
from bpfpatch.isa.refs import REF_TABLE, Ref
from bpfpatch.patch import Node, PatchList

MAX_STACK = 512
FP = 10
ALL_REGS = frozenset(range(11))
# Registers a builder may hand out, callee-saved first (they survive calls).
SCRATCH_ORDER = (9, 8, 7, 6, 5, 4, 3, 2, 1, 0)


class Block:
    """One basic block of a `FlowGraph` (a handle, made on demand): its nodes, edges and subprogram.

    `succs` / `preds` are block indices (a jump's target block first, then
    the fall-through); `seen` is the verification layer's verdict (None when
    it has not run).
    """

    __slots__ = ("graph", "index")

    def __init__(self, graph: "FlowGraph", index: int) -> None:
        self.graph = graph
        self.index = index

    @property
    def start(self) -> int:
        """Position (in `FlowGraph.nodes`) of the block's leader."""
        return int(self.graph.block_start[self.index])

    @property
    def end(self) -> int:
        """Position one past the block's final instruction."""
        return int(self.graph.block_start[self.index + 1])

    @property
    def subprog(self) -> int:
        """The index of the subprogram holding the block."""
        return int(self.graph.block_subprog[self.index])

    @property
    def nodes(self) -> list[Node]:
        """The block's nodes, in order."""
        return self.graph.nodes[self.start:self.end]

    @property
    def first(self) -> Node:
        """The block's leader."""
        return self.graph.nodes[self.start]

    @property
    def last(self) -> Node:
        """The block's final instruction (its jump or exit, if it has one)."""
        return self.graph.nodes[self.end - 1]

    @property
    def succs(self) -> list[int]:
        """Successor blocks (the jump's target first, then the fall-through)."""
        g = self.graph
        return [int(s) for s in g.block_succ[self.index].tolist() if s >= 0]

    @property
    def preds(self) -> list[int]:
        """Predecessor blocks, in block order."""
        g = self.graph
        return g.pred_src[g.pred_ptr[self.index]:g.pred_ptr[self.index + 1]].tolist()

    @property
    def seen(self) -> bool | None:
        """Does some verified path reach the block (its nodes' `InsnAux.seen`)? None without facts."""
        flags = [getattr(nd.aux, "seen", None) for nd in self.nodes]
        if any(a is not None for a in flags):
            return any(bool(a) for a in flags)
        return None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Block) and other.graph is self.graph and other.index == self.index

    def __hash__(self) -> int:
        return hash((id(self.graph), self.index))

    def __repr__(self) -> str:
        return f"<Block {self.index} [{self.start}:{self.end}] subprog {self.subprog} succs {self.succs}>"


class NodeSequence(Sequence[Node]):
    """Nodes by position, made on demand from an id column (no object per instruction is kept)."""

    __slots__ = ("_pl", "_ids")

    def __init__(self, pl: PatchList, ids: np.ndarray) -> None:
        self._pl = pl
        self._ids = ids

    def __len__(self) -> int:
        return len(self._ids)

    def __getitem__(self, i):  # type: ignore[override]
        pl = self._pl
        if isinstance(i, slice):
            return [pl.node(nid) for nid in self._ids[i].tolist()]
        return pl.node(int(self._ids[_as_index(i)]))

    def __iter__(self) -> Iterator[Node]:
        pl = self._pl
        for nid in self._ids.tolist():
            yield pl.node(nid)


class InsnSequence(Sequence[Insn]):
    """Instructions by position, decoded on demand from the nodes."""

    __slots__ = ("_nodes",)

    def __init__(self, nodes: NodeSequence) -> None:
        self._nodes = nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [n.insn for n in self._nodes[i]]
        return self._nodes[i].insn

    def __iter__(self) -> Iterator[Insn]:
        for n in self._nodes:
            yield n.insn


class PositionMap(Mapping[Node, int]):
    """Node -> its position in `FlowGraph.nodes` (a column by node id, no dict)."""

    __slots__ = ("_nodes", "_pos")

    def __init__(self, nodes: NodeSequence, pos: np.ndarray) -> None:
        self._nodes = nodes
        self._pos = pos

    def __getitem__(self, node: Node) -> int:
        nid = node.id if isinstance(node, Node) else -1
        p = int(self._pos[nid]) if 0 <= nid < len(self._pos) else -1
        if p < 0 or self._nodes[p] != node:
            raise KeyError(node)
        return p

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self._nodes)


class Dominators(Mapping[int, int]):
    """Block -> its immediate dominator, for the blocks reachable from a subprogram's entry (sorted columns)."""

    __slots__ = ("_keys", "_vals")

    def __init__(self, keys: np.ndarray, vals: np.ndarray) -> None:
        self._keys = keys
        self._vals = vals

    def _find(self, b: object) -> int:
        try:
            b = _as_index(b)
        except TypeError:
            return -1
        k = int(np.searchsorted(self._keys, b))
        return k if k < len(self._keys) and self._keys[k] == b else -1

    def __getitem__(self, b: int) -> int:
        k = self._find(b)
        if k < 0:
            raise KeyError(b)
        return int(self._vals[k])

    def __contains__(self, b: object) -> bool:
        return self._find(b) >= 0

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[int]:
        return iter(self._keys.tolist())


def _immediate_dominators(entry: int, succ: array, pred_ptr: array, pred_src: array) -> tuple[np.ndarray, np.ndarray]:
    """Lengauer and Tarjan's algorithm with path compression: O(E log V), iterative, in int columns.

    `succ`: two successor blocks per block (-1: none); the predecessors of
    block b are ``pred_src[pred_ptr[b]:pred_ptr[b + 1]]``.  Returns (the
    blocks reachable from `entry`, sorted; their immediate dominators, the
    entry's being itself).
    """
    nblocks = len(pred_ptr) - 1
    dfn = array("i", [-1]) * nblocks
    parent = array("i", [-1]) * nblocks
    vertex = array("i")
    todo, todo_parent = array("i", [entry]), array("i", [-1])
    while todo:  # preorder; a block's parent is the block whose push was popped first (a DFS tree)
        v, p = todo.pop(), todo_parent.pop()
        if dfn[v] >= 0:
            continue
        dfn[v] = len(vertex)
        vertex.append(v)
        parent[v] = p
        for w in (succ[2 * v + 1], succ[2 * v]):  # the target popped first, as a recursion would visit it
            if w >= 0 and dfn[w] < 0:
                todo.append(w)
                todo_parent.append(v)
    semi = array("i", dfn)
    label = array("i", range(nblocks))
    ancestor = array("i", [-1]) * nblocks
    idom = array("i", [-1]) * nblocks
    bucket, bucket_next = array("i", [-1]) * nblocks, array("i", [-1]) * nblocks

    def evaluate(v: int) -> int:
        if ancestor[v] < 0:
            return v
        chain = []
        x = v
        while ancestor[ancestor[x]] >= 0:
            chain.append(x)
            x = ancestor[x]
        for x in reversed(chain):
            a = ancestor[x]
            if semi[label[a]] < semi[label[x]]:
                label[x] = label[a]
            ancestor[x] = ancestor[a]
        return label[v]

    for i in range(len(vertex) - 1, 0, -1):
        w = vertex[i]
        for k in range(pred_ptr[w], pred_ptr[w + 1]):
            v = pred_src[k]
            if dfn[v] < 0:
                continue  # not reachable from the entry
            u = evaluate(v)
            if semi[u] < semi[w]:
                semi[w] = semi[u]
        s = vertex[semi[w]]
        bucket_next[w], bucket[s] = bucket[s], w
        p = parent[w]
        ancestor[w] = p
        v = bucket[p]
        bucket[p] = -1
        while v >= 0:
            u = evaluate(v)
            idom[v] = u if semi[u] < semi[v] else p
            v = bucket_next[v]
    for i in range(1, len(vertex)):
        w = vertex[i]
        if idom[w] != vertex[semi[w]]:
            idom[w] = idom[idom[w]]
    idom[entry] = entry
    keys = np.sort(np.frombuffer(vertex, dtype=np.int32)) if len(vertex) else np.zeros(0, np.int32)
    vals = np.frombuffer(idom, dtype=np.int32)[keys]
    return keys, vals


class BlockSequence(Sequence[Block]):
    """The blocks of a `FlowGraph` by index, as `Block` handles made on demand."""

    __slots__ = ("_graph", "_n")

    def __init__(self, graph: "FlowGraph", n: int) -> None:
        self._graph = graph
        self._n = n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [Block(self._graph, k) for k in range(*i.indices(self._n))]
        k = _as_index(i)
        if k < 0:
            k += self._n
        if not 0 <= k < self._n:
            raise IndexError(i)
        return Block(self._graph, k)

    def __iter__(self) -> Iterator[Block]:
        g = self._graph
        for k in range(self._n):
            yield Block(g, k)


class FlowGraph:
    """Blocks, CFG, call graph, dominators, liveness and stack use of a patch list, computed once.

    The graph describes the list as it was when built: after patching, build a new one.
    It is kept in NumPy columns (per position: node id, target position, block;
    per block: start, subprogram, successors, predecessors): `nodes`, `insns`,
    `index` and `blocks` make their `Node`, `Insn` and `Block` handles when asked.
    """

    def __init__(self, pl: PatchList) -> None:
        self.pl = pl
        ids = pl.live_ids()
        pos, target = target_positions(pl, ids)
        self._w0 = pl.words(ids)[0]
        # int32 columns: positions, node ids and blocks are far below 2**31
        ids = ids.astype(np.int32)
        self.ids: np.ndarray = ids
        self.nodes: NodeSequence = NodeSequence(pl, ids)
        self.index: PositionMap = PositionMap(self.nodes, pos.astype(np.int32))
        del pos
        self.insns: InsnSequence = InsnSequence(self.nodes)
        self.code: np.ndarray = (self._w0 & np.uint64(0xFF)).astype(np.uint8)
        self.target: np.ndarray = target.astype(np.int32)  # per position: where its reference lands, or -1
        del target
        self.subprog_starts: list[int] = self._subprog_starts()
        self._build_blocks()
        self._live: Liveness | None = None
        self._idom: dict[int, Dominators] = {}

    # --- structure -----------------------------------------------------------------

    def _subprog_refs(self) -> np.ndarray:
        """Positions of pseudo calls and ``ld_func`` loads with a target in the list."""
        src = ((self._w0 >> np.uint64(12)) & np.uint64(0xF)).astype(np.uint8)
        ref = REF_TABLE[self.code, src]
        return np.flatnonzero(((ref == Ref.SUBPROG) | (ref == Ref.FUNC)) & (self.target >= 0))

    def _subprog_starts(self) -> list[int]:
        starts = {0} if len(self.ids) else set()
        starts.update(self.target[self._subprog_refs()].tolist())
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
        n = len(self.ids)
        code, target = self.code, self.target
        starts = np.array(self.subprog_starts, dtype=np.int64)
        leader = np.zeros(n + 1, dtype=bool)
        leader[starts] = True
        ends = np.flatnonzero(np.take(ENDS_BLOCK, code))  # the one block rule (`bpfpatch.analysis.liveness`)
        jumps = ends[np.take(HAS_TARGET_EDGE, code[ends]) & (target[ends] >= 0)]
        leader[target[jumps]] = True
        leader[ends + 1] = True
        leader = leader[:n]
        #: per block: its first position (one more entry: n)
        self.block_start: np.ndarray = np.append(np.flatnonzero(leader), n).astype(np.int32)
        #: per position: its block
        self.block_of: np.ndarray = (np.cumsum(leader, dtype=np.int32) - 1)
        del leader
        sub_of = (np.searchsorted(starts, np.arange(n, dtype=np.int32), side="right") - 1).astype(np.int32)
        nb = len(self.block_start) - 1
        first = self.block_start[:-1]
        last = self.block_start[1:] - 1
        self.block_subprog: np.ndarray = sub_of[first] if n else np.zeros(0, dtype=np.int32)
        kind_last = code[last]
        tgt = target[last]
        has_t = np.take(HAS_TARGET_EDGE, kind_last) & (tgt >= 0)
        t_blk = np.where(has_t, self.block_of[np.maximum(tgt, 0)], -1).astype(np.int32)
        nxt = np.minimum(last + 1, max(n - 1, 0))
        falls = ~np.take(NO_FALL, kind_last) & (last + 1 < n) & (sub_of[nxt] == self.block_subprog)
        f_blk = np.where(falls, np.arange(1, nb + 1, dtype=np.int32), -1).astype(np.int32)
        del sub_of, nxt, falls
        f_blk[f_blk == t_blk] = -1  # a conditional jump to the next instruction: one edge, listed once
        #: per block: (target block, fall-through block), -1 for none
        self.block_succ: np.ndarray = np.stack([t_blk, f_blk], axis=1) if nb else np.zeros((0, 2), dtype=np.int32)
        del t_blk, f_blk, has_t, tgt, kind_last
        src = np.repeat(np.arange(nb, dtype=np.int32), 2)
        dst = self.block_succ.reshape(-1)
        keep = dst >= 0
        src, dst = src[keep], dst[keep]
        order = np.argsort(dst, kind="stable")  # per destination: sources in block order
        self.pred_src: np.ndarray = src[order]
        del src, order
        self.pred_ptr: np.ndarray = np.zeros(nb + 1, dtype=np.int32)
        np.cumsum(np.bincount(dst, minlength=nb), out=self.pred_ptr[1:])
        self.blocks: BlockSequence = BlockSequence(self, nb)

    def subprog_of(self, node: Node) -> int:
        """The index of the subprogram (in `subprog_starts` order) that holds `node`."""
        return int(self.block_subprog[self.block_of[self.index[node]]])

    def block_at(self, node: Node) -> Block:
        """The block that holds `node`."""
        return Block(self, int(self.block_of[self.index[node]]))

    def _subprog_range(self, subprog: int) -> tuple[int, int]:
        lo = int(np.searchsorted(self.block_subprog, subprog, side="left"))
        hi = int(np.searchsorted(self.block_subprog, subprog, side="right"))
        return lo, hi

    def subprog_blocks(self, subprog: int) -> list[Block]:
        """The blocks of one subprogram, in list order (the first is its entry)."""
        lo, hi = self._subprog_range(subprog)
        return [Block(self, k) for k in range(lo, hi)]

    @property
    def edges(self) -> list[tuple[int, int]]:
        """Every CFG edge as (from block, to block), in block order."""
        return [(b, s) for b, pair in enumerate(self.block_succ.tolist()) for s in pair if s >= 0]

    @property
    def call_graph(self) -> dict[int, set[int]]:
        """Subprogram -> the subprograms it calls (pseudo calls and ``ld_func`` callbacks)."""
        graph: dict[int, set[int]] = {k: set() for k in range(len(self.subprog_starts))}
        sub = self.block_subprog[self.block_of]
        for i in self._subprog_refs().tolist():
            graph[int(sub[i])].add(int(sub[self.target[i]]))
        return graph

    # --- dominators ------------------------------------------------------------------

    def dominators(self, subprog: int = 0) -> Dominators:
        """Immediate dominators of the subprogram's reachable blocks: block -> idom (the entry maps to itself)."""
        if subprog not in self._idom:
            self._idom[subprog] = self._dominators(subprog)
        return self._idom[subprog]

    def _dominators(self, subprog: int) -> Dominators:
        lo, hi = self._subprog_range(subprog)
        if lo >= hi:
            return Dominators(np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32))
        succ = array("i", self.block_succ.tobytes())
        pred_ptr = array("i", self.pred_ptr.tobytes())
        pred_src = array("i", self.pred_src.tobytes())
        return Dominators(*_immediate_dominators(lo, succ, pred_ptr, pred_src))

    def dominates(self, a: int, b: int) -> bool:
        """Does block `a` dominate block `b` (same subprogram, b reachable)?"""
        idom = self.dominators(int(self.block_subprog[b]))
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
            n = len(self.ids)
            within = np.ones(n, dtype=bool)
            if n:
                within[-1] = False
                starts = np.array(self.subprog_starts, dtype=np.int64)
                within[starts[starts > 0] - 1] = False
            use, defs, _ = word_masks(self._w0)
            fall = within & ~np.take(NO_FALL, self.code)
            tgt = np.where(np.take(HAS_TARGET_EDGE, self.code), self.target, -1)
            self._live = solve(use, defs, fall, tgt)
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


__all__ = ["ALL_REGS", "Block", "BlockSequence", "Dominators", "FlowGraph", "InsnSequence", "MAX_STACK", "NodeSequence", "PositionMap", "SCRATCH_ORDER",
           "entry_of_subprogs", "uses_defs"]
