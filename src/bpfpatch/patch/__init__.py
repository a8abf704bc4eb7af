"""The patch list and its linearizer: linear-time insert / replace / delete."""

from bpfpatch.patch.node import DELETED, INSERTED, Node, PatchInsn
from bpfpatch.patch.patchlist import PatchList
from bpfpatch.patch.linearize import linearize

__all__ = ["DELETED", "INSERTED", "Node", "PatchInsn", "PatchList", "linearize"]
