"""The patch list and its linearizer: linear-time insert / replace / delete.

Layers, bottom up: `store` (the node columns and `check()`), `buffer` (patch
buffers checked, encoded and kept by content), `apply` (one patch applied
to the store), `fast` (the switchable fast paths), `linearize` (store ->
program), `patchlist` (the API); `bulk` is the vectorized form on a program.
"""

from bpfpatch.patch.bulk import SITE, Row, S, replace_sites
from bpfpatch.patch.buffer import PatchInsn
from bpfpatch.patch.fast import FastPaths
from bpfpatch.patch.node import Node
from bpfpatch.patch.patchlist import PatchList
from bpfpatch.patch.store import DELETED, INSERTED

__all__ = ["DELETED", "INSERTED", "FastPaths", "Node", "PatchInsn", "PatchList", "Row", "S", "SITE", "replace_sites"]


def linearize(pl: PatchList, *, relax_long_jumps: bool = False):
    """``pl.linearize(relax_long_jumps=...)`` as a function: the list laid out as a new `Program`."""
    return pl.linearize(relax_long_jumps=relax_long_jumps)


__all__ += ["linearize"]
