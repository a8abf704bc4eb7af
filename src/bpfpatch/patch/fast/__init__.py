"""The patch list's fast paths, each switchable, all behind the list's one settle point.

* `defer`  -- `replace` with a patch seen before changes the node at once
  and links its new nodes later, all sites of one patch together
  (`deferred`);
* `group`  -- many sites of one patch linked in one NumPy pass (`group`:
  settling deferred replaces, and `PatchList.replace_rows`); off, each
  site is linked one at a time;
* `order`  -- the list order kept as an array across group inserts (`order`);
  off, every request walks the list;
* `blocks` -- `linearize` lays deferred replaces out as blocks in front of
  their sites without linking them (`blocks`); off, it settles them first.

Every combination gives the same program, byte for byte, as the simple
operations (`bpfpatch.patch.apply`) and the kernel's one-at-a-time algorithm
(`bpfpatch.reference`); the tests run them all.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass


@dataclass(frozen=True)
class FastPaths:
    """Which fast paths a `PatchList` uses (all by default)."""

    defer: bool = True
    group: bool = True
    order: bool = True
    blocks: bool = True
    #: Fewer deferred replaces than this are linked one at a time (cheaper than NumPy set-up).
    group_min: int = 16

    @classmethod
    def none(cls) -> "FastPaths":
        """The simple list: every operation linked at once, one at a time."""
        return cls(False, False, False, False)

    @classmethod
    def every_combination(cls, group_min: int = 16) -> list["FastPaths"]:
        """All 16 combinations of the four switches (for tests: ``group_min=0`` groups even two sites)."""
        return [cls(*bits, group_min=group_min) for bits in itertools.product((False, True), repeat=4)]


__all__ = ["FastPaths"]
