"""Handles and patch-buffer items of the patch list.

A `Node` is a light handle (list, id) onto one patchable instruction: its
instruction, its target reference, its aux data and its original index.
The data itself lives in the `PatchList`'s parallel arrays so that building a
list for a million instructions creates no per-instruction Python object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from bpfpatch.isa import Insn, Ref

# Filled by the patch list (`patchlist._INSN_CACHE`): decoded single-slot instructions by word.
_INSN_CACHE: dict[int, Insn] = {}

if TYPE_CHECKING:
    from bpfpatch.patch.patchlist import PatchList

#: ``orig_idx`` of a node that a patch inserted (the seed's -1).
INSERTED = -1
#: ``orig_idx`` of a node that was deleted (the seed's -2).
DELETED = -2


class PatchInsn(NamedTuple):
    """A patch-buffer item that carries more than an `Insn`.

    ``target``: an existing `Node` the jump/call/pseudo-func goes to (its
    offset is then ignored).  ``aux``: the aux data of the new node.
    """

    insn: Insn
    target: "Node | None" = None
    aux: Any = None


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
        insn = _INSN_CACHE.get(self._pl._w0[self._id])
        return self._pl._get_insn(self._id) if insn is None else insn

    @property
    def orig_idx(self) -> int:
        """Original slot index, or `INSERTED` / `DELETED`."""
        return self._pl._orig[self._id]

    @property
    def aux(self) -> Any:
        """The node's aux data (the verifier's insn_aux_data analogue), or None."""
        aux, nid = self._pl._aux, self._id
        return aux[nid] if nid < len(aux) else None

    @aux.setter
    def aux(self, value: Any) -> None:
        self._pl._set_aux(self._id, value)

    @property
    def target(self) -> "Node | None":
        """The node a jump/call goes to (where it will land), or None."""
        if self._pl._pend_groups:
            self._pl._flush()
        a = self._pl._target[self._id]
        if a < 0:
            return None
        # A deleted target forwards to the next live node, which is where the jump lands.
        nid = self._pl._landing(self._pl._anchor_node[a])
        return None if nid < 0 else Node(self._pl, nid)

    @property
    def ref(self) -> Ref:
        """What the node's instruction refers to (`bpfpatch.isa.refs.Ref`: jump, subprogram, map, ...)."""
        return self.insn.ref

    @property
    def deleted(self) -> bool:
        """Was the node deleted?"""
        return self._pl._orig[self._id] == DELETED

    @property
    def next(self) -> "Node | None":
        """The next live node in list order."""
        nid = self._pl._next_live(self._id)
        return None if nid < 0 else Node(self._pl, nid)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Node) and other._pl is self._pl and other._id == self._id

    def __hash__(self) -> int:
        return hash((id(self._pl), self._id))

    def __repr__(self) -> str:
        o = self.orig_idx
        tag = {INSERTED: "inserted", DELETED: "deleted"}.get(o, f"orig {o}")
        return f"<Node {self._id} ({tag}) {self.insn}>"
