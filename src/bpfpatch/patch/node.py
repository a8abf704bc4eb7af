"""`Node`: a light handle (list, id) onto one patchable instruction of a `PatchList`.

Its instruction, target reference, aux data and original index live in the
list's node store (`bpfpatch.patch.store`), so a list for a million
instructions creates no per-instruction object; a handle is made when one
is asked for and compares equal to every other handle of the same node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bpfpatch.isa import Insn, Ref
from bpfpatch.patch.store import DELETED, END, INSERTED, INSN_CACHE

if TYPE_CHECKING:
    from bpfpatch.patch.patchlist import PatchList

# The cache's lookup bound once: a method of an imported name compiles to an attribute
# load and a bound-method object per call (CPython skips LOAD_METHOD for imported names).
_cached_insn = INSN_CACHE.get


class Node:
    """One patchable instruction of a `PatchList` (a handle; compare with ==)."""

    __slots__ = ("_pl", "_id")

    def __init__(self, pl: "PatchList", node_id: int) -> None:
        self._pl = pl
        self._id = node_id

    @property
    def id(self) -> int:
        """The node's id in its list: stable for the node's life, also for deleted nodes."""
        return self._id

    @property
    def insn(self) -> Insn:
        """The node's instruction (jump offsets are stale until linearize)."""
        # The common case inlined: one cache lookup (a deferred replace has already
        # written the node's new words, so pending patches never matter here).
        insn = _cached_insn(self._pl._w0[self._id])
        return self._pl.store.insn(self._id) if insn is None else insn

    @property
    def orig_idx(self) -> int:
        """Original slot index, or `INSERTED` / `DELETED`."""
        return self._pl.store.orig[self._id]

    @property
    def aux(self) -> Any:
        """The node's aux data (the verifier's insn_aux_data analogue), or None."""
        aux, nid = self._pl.store.aux, self._id
        return aux[nid] if nid < len(aux) else None

    @aux.setter
    def aux(self, value: Any) -> None:
        self._pl.store.set_aux(self._id, value)

    @property
    def target(self) -> "Node | None":
        """The node a jump/call goes to (where it will land), or None."""
        pl = self._pl
        pl.settle()
        store = pl.store
        a = store.target[self._id]
        if a < 0:
            return None
        # A deleted target forwards to the next live node, which is where the jump lands.
        nid = store.landing(store.anchor_node[a])
        return None if nid == END else Node(pl, nid)

    @property
    def ref(self) -> Ref:
        """What the node's instruction refers to (`bpfpatch.isa.Ref`: jump, subprogram, map, ...)."""
        return self.insn.ref

    @property
    def deleted(self) -> bool:
        """Was the node deleted?"""
        return self._pl.store.orig[self._id] == DELETED

    @property
    def next(self) -> "Node | None":
        """The next live node in list order."""
        pl = self._pl
        pl.settle()
        nid = pl.store.next_live(self._id)
        return None if nid == END else Node(pl, nid)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Node) and other._pl is self._pl and other._id == self._id

    def __hash__(self) -> int:
        return hash((id(self._pl), self._id))

    def __repr__(self) -> str:
        o = self.orig_idx
        tag = {INSERTED: "inserted", DELETED: "deleted"}.get(o, f"orig {o}")
        return f"<Node {self._id} ({tag}) {self.insn}>"


class NewNode(Node):
    """The last new node of a deferred `prepend` / `append` (what they return): a `Node` whose id is
    known once the list has linked the insert, which it does the first time the id is asked for.

    ``first`` is the insert group's first-id cell (-1 until linked) and ``at`` the node's place
    after it; the fast path sets both, with no ``__init__``.
    """

    __slots__ = ("_first", "_at")

    @property
    def _id(self) -> int:  # type: ignore[override]
        first = self._first
        if first[0] < 0:
            self._pl.settle()
        return first[0] + self._at
