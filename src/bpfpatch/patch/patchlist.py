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

Layers: the columns live in a `NodeStore` (`store`, with `check()` of its
invariants); each operation here checks its arguments, settles the fast
paths (`settle`, the one settle point) and applies one prepared patch
(`bpfpatch.patch.apply`).  The fast paths (`bpfpatch.patch.fast`: deferred
replaces, group inserts, the order cache, blocks) are switched by
``PatchList(program, fast=FastPaths(...))``.
"""

from __future__ import annotations

from itertools import compress, islice, repeat
from operator import ne
from typing import Any, Iterator, Sequence

import numpy as np

from bpfpatch.errors import PatchError
from bpfpatch.isa import LD_IMM64, insn_of_words
from bpfpatch.patch import apply
from bpfpatch.patch.bulk import SITE, row_words
from bpfpatch.patch.buffer import BufferCache, Patch, PatchInsn, ToNext, ToSiteTarget, prepare
from bpfpatch.patch.fast import FastPaths
from bpfpatch.patch.fast.blocks import block
from bpfpatch.patch.fast.deferred import Deferred, DeferringReplace
from bpfpatch.patch.fast.group import GroupPatch, link_group
from bpfpatch.patch.fast.order import OrderCache
from bpfpatch.patch.linearize import Layout, linearize
from bpfpatch.patch.node import Node
from bpfpatch.patch.store import DELETED, END, NodeStore, view
from bpfpatch.program import Program


class PatchList:
    """The patch list of one program; see the module docstring.

    ``kernel_internal=True`` admits what only the kernel's own rewrites
    emit: register 11 (its AX) and the zero-extension marker.
    """

    def __new__(cls, program: Program, *, fast: FastPaths = FastPaths(), kernel_internal: bool = False) -> "PatchList":
        # With deferred replaces on, the list is a `DeferringPatchList` (the same list whose
        # `replace` defers where it can): a per-instance switch with no per-call cost.
        if cls is PatchList and fast.defer:
            cls = DeferringPatchList
        return super().__new__(cls)

    def __init__(self, program: Program, *, fast: FastPaths = FastPaths(), kernel_internal: bool = False) -> None:
        if not isinstance(program, Program):
            hint = " (Program.from_bytes / from_insns, or read_program for a file)" if isinstance(
                program, (bytes, bytearray, list, tuple, str)) else ""
            raise PatchError(f"a patch list is made from a Program, not {type(program).__name__}{hint}")
        if not isinstance(fast, FastPaths):
            raise PatchError(f"fast= takes a FastPaths, not {type(fast).__name__}")
        self.program = program
        self.fast = fast
        self.store = self._store = NodeStore(program)  #: the node store (columns by node id): read it, patch through the list
        self._buffers = BufferCache(kernel_internal=kernel_internal)
        self._order = OrderCache(self._store, enabled=fast.order)
        self._w0 = self._store.w0  # for `Node.insn` (a column only grows in place)
        self._deferred: Deferred | None = None
        if fast.defer:
            self._deferred = Deferred(self._store, self._buffers, self._order, group=fast.group, group_min=fast.group_min)
            self._last, self._mark = self._deferred.last, self._deferred.mark  # for the `replace` fast path
            self._last_pre, self._last_app = self._deferred.last_pre, self._deferred.last_app  # prepend, append

    # --- the settle point and checks ------------------------------------------------

    def settle(self) -> None:
        """Link every deferred replace now (every operation that reads the list does this first)."""
        d = self._deferred
        if d is not None and d.groups:
            d.settle()

    @property
    def pending_replaces(self) -> int:
        """Replaces deferred by the fast path and not linked yet (0 with ``FastPaths(defer=False)``)."""
        d = self._deferred
        return sum(len(xs) for _, xs in d.groups.values()) if d is not None else 0

    def check(self) -> None:
        """Raise `AssertionError` if an invariant of the store or of a fast path's state is broken."""
        d = self._deferred
        self._store.check(self._order.cached(), d.mark if d is not None else None, d.pending_sites() if d is not None else ())

    def _check_node(self, node: Any, what: str = "patch") -> int:
        # One combined test on the hot path; the slow path says what is wrong.
        if type(node) is Node and node._pl is self and node._id and self._store.orig[node._id] != DELETED:
            return node._id
        if not isinstance(node, Node):
            raise PatchError(f"{what}: expected a Node, got {type(node).__name__}")
        if node._pl is not self:
            raise PatchError(f"{what}: the node belongs to another PatchList")
        nid = node._id  # (a `NewNode` a deferred insert returned: its id links the insert)
        if nid == 0:
            raise PatchError(f"{what}: the head is not an instruction")
        if self._store.orig[nid] != DELETED:
            return nid
        raise PatchError(f"{what}: node {nid} was deleted")

    # --- reading --------------------------------------------------------------------

    def __iter__(self) -> Iterator[Node]:
        """Live nodes in order; nodes inserted during the iteration are not visited."""
        d = self._deferred
        if d is not None and d.groups:  # `settle`, inline
            d.settle()
        store = self._store
        limit = len(store.orig)
        nxt, orig = store.next, store.orig
        new = object.__new__  # a handle without an __init__ frame: a fifth of the loop
        if limit == store.n + 1:
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
        while nid != END:
            if nid < limit and orig[nid] != DELETED:
                node = new(Node)
                node._pl = self
                node._id = nid
                yield node
            nid = nxt[nid]

    def __len__(self) -> int:
        """Number of live instructions."""
        self.settle()
        return self._store.live

    @property
    def head(self) -> Node:
        """The dummy head: `append(pl.head, patch)` inserts at the very start."""
        return Node(self, 0)

    @property
    def id_bound(self) -> int:
        """One more than the largest node id (size an array indexed by node id with it)."""
        return len(self._store.orig)

    def node(self, node_id: int) -> Node:
        """The node with id `node_id` (as `Node.id`, `live_ids` and `target_ids` give them)."""
        if not 0 < node_id < len(self._store.orig):
            raise PatchError(f"node id {node_id} is not a node of this list")
        return Node(self, int(node_id))

    def node_at(self, orig_idx: int) -> Node:
        """The node of the original instruction at slot `orig_idx`."""
        if not 0 <= orig_idx < len(self.program.slots):
            raise PatchError(f"slot {orig_idx} is outside the program")
        node = self.find(orig_idx)
        if node is None:
            raise PatchError(f"slot {orig_idx} is the second half of an ld_imm64")
        return node

    def find(self, orig_idx: int) -> Node | None:
        """The node of the original instruction at slot `orig_idx`, or None if no instruction starts there."""
        if not 0 <= orig_idx < len(self.program.slots):
            return None
        nid = int(self._store.slot_to_id[orig_idx])
        return Node(self, nid) if nid > 0 else None

    def landing(self, node: Node) -> Node | None:
        """Where a reference to `node` lands now: itself, or the next live node if deleted."""
        self.settle()
        nid = self._store.landing(node._id)
        return None if nid == END else Node(self, nid)

    def target_ids(self, ids: np.ndarray | Sequence[int]) -> np.ndarray:
        """Per node id of `ids`: the id of the node its target reference lands on, or -1.

        The vectorized `Node.target`: jumps, pseudo calls and pseudo-func
        loads have a target (which field held its offset, and what else an
        instruction refers to, is `bpfpatch.isa.refs`); a deleted target
        lands on the next live node, a target with nothing live after it on -1.
        """
        self.settle()
        store = self._store
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu":
            ids = ids.astype(np.int64)
        # In the id width until the result (a jump's anchor, then its node): 17 bytes a node at the
        # peak, where int64 positions of the jumps and their targets took about 45.
        anchors = view(store.target)[ids]
        none = anchors < 0
        np.maximum(anchors, 0, out=anchors)
        dest = view(store.anchor_node)[anchors]
        del anchors
        gone = np.flatnonzero(view(store.orig)[dest] == DELETED)
        for j in gone.tolist():  # a deleted target: where it lands now (none: not a jump)
            if not none[j]:
                dest[j] = store.landing(int(dest[j]))
        out = dest.astype(np.int64)
        del dest
        out[none] = -1
        return out

    def live_ids(self) -> np.ndarray:
        """Ids of the live nodes in list order, as an array (what iteration visits).

        For vectorized passes: select sites with NumPy on `words`, then patch
        them with `replace_rows`.
        """
        self.settle()
        ids = self._order.order()
        return ids[view(self._store.orig)[ids] != DELETED]

    def words(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(first slot word, ld_imm64 second slot word) of nodes, little-endian ``struct bpf_insn``."""
        self.settle()
        return view(self._store.w0, np.uint64)[ids].copy(), view(self._store.w1, np.uint64)[ids].copy()

    def orig_indices(self, ids: np.ndarray) -> np.ndarray:
        """``orig_idx`` of nodes (`INSERTED` for new ones)."""
        return view(self._store.orig)[ids].astype(np.int64)

    # --- patching -------------------------------------------------------------------

    def replace(self, node: Node, patch: Patch, *, retarget: bool = True) -> Node:
        """Replace the node's instruction with `patch`; return the node, now the patch's last instruction.

        The node keeps its aux data (as the kernel's adjust_insn_aux_data
        moves it to the end of the patch) unless the last item gives some.
        Jumps to the node land on the first patch instruction
        (``retarget=True``, kernel semantics) or on the last (``False``).
        """
        x = self._check_node(node, "replace")
        self.settle()
        prep = self._buffers.prepare(self._check_node, patch, self._store.has_after(x))
        apply.replace_now(self._store, x, prep, retarget)
        return node

    def prepend(self, node: Node, patch: Patch, *, retarget: bool = True) -> Node:
        """Insert `patch` before the node, leaving the node and its aux untouched; return the last new node.

        Jumps to the node land on the first inserted instruction
        (``retarget=True``, kernel semantics) or still on the node (``False``).
        """
        x = self._check_node(node, "prepend")
        self.settle()
        prep = self._buffers.prepare(self._check_node, patch, True)
        return Node(self, apply.insert_before(self._store, x, prep, retarget))

    def append(self, node: Node, patch: Patch) -> Node:
        """Insert `patch` after the node; return the last new node.

        ``append(pl.head, patch)`` inserts at the very start of the program,
        which is `prepend` to the first instruction (kernel semantics: the
        new code becomes the start of subprogram 0).
        """
        self.settle()
        if isinstance(node, Node) and node._pl is self and node._id == 0:
            first = self._store.next_live(0)
            if first == END:
                raise PatchError("append: the program is empty")
            return self.prepend(Node(self, first), patch)
        x = self._check_node(node, "append")
        prep = self._buffers.prepare(self._check_node, patch, self._store.has_after(x))
        return Node(self, apply.insert_after(self._store, x, prep))

    def delete(self, node: Node) -> None:
        """Delete the node; jumps to it land on the next live instruction.

        Refused (the list untouched): the program's last instruction, the last
        instruction of a subprogram a call still targets, and the last live
        node while a jump lands on it.
        """
        x = self._check_node(node, "delete")
        self.settle()
        apply.delete_now(self._store, x)
        if self._deferred is not None:
            self._deferred.forget(x)

    def replace_rows(self, nodes: np.ndarray | Sequence[Node], template: Sequence[Any]) -> None:
        """The bulk form on the list: `replace` every node with one template.

        `template` is the language of `bpfpatch.patch.bulk`: `Row`s whose
        fields are ints, ``S.<field>`` (the site's own), per-site arrays or
        functions of the structured site rows, and `SITE` (the site's own
        instruction, keeping its jump target).  Jumps between rows use offsets
        relative to the row (one past the last row: the node after the site);
        ``Row(..., to_site_target=True)`` jumps where the site's jump went.
        The same as ``replace(node, patch)`` (``retarget=True``) at every site,
        in list order, without a Python object per instruction.
        """
        d = self._deferred
        if d is None or not d.rows_only():  # deferred row groups stay deferred behind this one
            self.settle()
        ids = self._site_ids(nodes)
        if d is not None and d.pending_among(ids):
            self.settle()
        if not len(template):
            raise PatchError("replace_rows: empty template (to remove instructions use delete)")
        if not len(ids):
            return
        store = self._store
        w0 = view(store.w0, np.uint64)[ids].copy()
        has_site = any(row is SITE for row in template)
        if has_site and ((w0 & np.uint64(0xFF)) == LD_IMM64).any():
            raise PatchError("replace_rows: a SITE row cannot copy an ld_imm64 (give its halves as rows)")
        site_target = view(store.target)[ids].copy()
        has = site_target >= 0
        if has_site and has.any() and not has.all():
            # SITE rows keep the site's jump target: jumps and the rest go apart.
            self.replace_rows(ids[has], template)
            self.replace_rows(ids[~has], template)
            return
        words, refs = row_words(template, w0, site_refs=bool(has.all()))
        if any(isinstance(r, ToSiteTarget) for r in refs) and not has.all():
            raise PatchError("replace_rows: to_site_target row for a site that is not a jump")
        if any(isinstance(r, ToNext) for r in refs):
            nxt = view(store.next)[ids]
            maybe_last = ids[(nxt == END) | (view(store.orig)[np.maximum(nxt, 0)] == DELETED)]
            if not all(store.has_after(x) for x in maybe_last.tolist()):
                raise PatchError("replace_rows: a row jumps past the end of the program")
        if self.fast.group:
            self._replace_rows_grouped(ids, words, refs, site_target)
        else:
            self._replace_rows_one_by_one(ids, words, refs, site_target)

    def _replace_rows_grouped(self, ids: np.ndarray, words: list, refs: tuple, site_target: np.ndarray) -> None:
        """`replace_rows` on the group path: deferred where it can be (`Deferred.defer_rows`), else linked."""
        m, k = len(ids), len(words) - 1
        head = np.empty((m, k), dtype=np.uint64)
        for r in range(k):
            head[:, r] = words[r]
            words[r] = None  # freed as it is copied: the rows' words live on in `head` only
        g = GroupPatch(ids, k, memoryview(head).cast("B") if head.size else b"", None, bytes(k), [None] * k,
                       words[k], 0, 0, refs, site_target)
        if k and self.fast.blocks and self._deferred is not None and self._deferred.defer_rows(g):
            return  # linked at the settle point, or laid out as a block by linearize
        link_group(self._store, self._order, g)

    def _site_ids(self, nodes: np.ndarray | Sequence[Node]) -> np.ndarray:
        """Sites of `replace_rows` as node ids, refusing foreign, dead and repeated ones."""
        if isinstance(nodes, np.ndarray):
            ids = nodes.astype(np.int64, copy=False)
        else:
            ids = np.asarray([self._check_node(n, "replace_rows") for n in nodes], dtype=np.int64)
        orig = view(self._store.orig)
        bad = (ids <= 0) | (ids >= len(orig))
        if not bad.any():
            bad = orig[ids] == DELETED
        if bad.any():
            raise PatchError(f"replace_rows: node {int(ids[np.argmax(bad)])} is not a live instruction of this list")
        if len(ids) * 64 < len(orig):  # few sites: sort them, O(m log m) not O(list)
            twice = len(np.unique(ids)) != len(ids)
        else:
            mark = np.zeros(len(orig), dtype=bool)
            mark[ids] = True
            twice = int(np.count_nonzero(mark)) != len(ids)
        if twice:
            raise PatchError("replace_rows: a node is listed twice")
        return ids

    def _replace_rows_one_by_one(self, ids: np.ndarray, words: list, refs: tuple, site_target: np.ndarray) -> None:
        """`replace_rows` without the group path: `replace_now` at each site, in the order given."""
        store = self._store
        own = tuple(r for r in refs if not isinstance(r, ToSiteTarget))
        to_site = [r.item for r in refs if isinstance(r, ToSiteTarget)]
        k = len(words) - 1
        if to_site:
            store.call_index = None  # a copied site reference may be a call: rebuild the delete check's index
        for j, x in enumerate(ids.tolist()):
            insns = [insn_of_words(int(w if np.ndim(w) == 0 else w[j]), 0) for w in words]
            tgt = int(site_target[j])
            lands_on_site = tgt >= 0 and store.landing(store.anchor_node[tgt]) == x
            base = len(store.orig)
            apply.replace_now(store, x, prepare([PatchInsn(i) for i in insns], own), True)
            for item in to_site:
                nid = x if item == k else base + item
                if lands_on_site:
                    store.point(nid, x, False)  # a jump to itself keeps landing on itself
                else:
                    store.target[nid] = tgt

    # --- layout ---------------------------------------------------------------------

    def linearize(self, *, relax_long_jumps: bool = False) -> Program:
        """Lay out the final program once (`bpfpatch.patch.linearize`, which only reads the list).

        With ``relax_long_jumps`` a jump whose offset no longer fits 16 bits
        is first rewritten in the list (``ja`` -> ``gotol``, conditional ->
        inverted condition over ``gotol``); otherwise `RelocationError` names it.
        """
        while True:
            blocks = self._blocks()
            layout = Layout(self._store, self._order.order(), blocks)
            long = layout.long_jumps()
            if not (relax_long_jumps and len(long)):
                return linearize(layout)
            del layout  # its arrays (a few words a slot) are not needed for relaxing, nor beside the next layout
            jumps = long.tolist() if not blocks else []
            del blocks, long
            self.settle()  # relaxing inserts nodes: link the deferred replaces first
            apply.relax(self._store, jumps, self._order.note_group_insert)

    def _blocks(self) -> list:
        """Deferred replaces as linearize blocks (the fast path), or settled first."""
        d = self._deferred
        if d is None or not d.groups:
            return []
        if self.fast.blocks:
            blocks = [block(prep, sites) for prep, sites in d.settle_in_place()]
            if all(b is not None for b in blocks):
                return blocks
        d.settle()  # a block whose own offsets do not fit (a patch over 32K instructions) is linked
        return []


class DeferringPatchList(DeferringReplace, PatchList):
    """A `PatchList` with deferred replaces (what ``PatchList(program)`` makes by default)."""
