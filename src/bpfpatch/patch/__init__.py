"""The patch list and its linearizer: linear-time insert / replace / delete."""

from bpfpatch.patch.node import DELETED, INSERTED, Node, PatchInsn
from bpfpatch.patch.patchlist import PatchList
from bpfpatch.patch.linearize import linearize
from bpfpatch.patch.bulk import SITE, Row, S, replace_sites

__all__ = ["DELETED", "INSERTED", "Node", "PatchInsn", "PatchList", "Row", "S", "SITE", "linearize", "replace_sites"]
