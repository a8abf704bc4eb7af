"""Blocks: deferred replaces and prepends laid out by `linearize` in front of their sites, without linking them.

A deferred patch references only its own items and "the node after it",
which is always the slot right after its block: every offset is a constant
of the patch, so its words are relocated once, for all sites.  A replace's
block ends with the site's new instruction; a prepend's stops before the
site, which stays a node of the list (the node after the patch).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from bpfpatch.isa.refs import TARGET_OF, Target
from bpfpatch.patch.buffer import Prepared, ToNext
from bpfpatch.patch.fast.group import GroupPatch, InsertGroup

_S16 = (-(1 << 15), (1 << 15) - 1)
_S32 = (-(1 << 31), (1 << 31) - 1)


class Block(NamedTuple):
    """The new instructions of a deferred replace, laid out at every one of its sites."""

    sites: np.ndarray
    head: int  # slots of new instructions before the site's own
    words: np.ndarray  # every slot of the block (the site's own last), references resolved; or, for a
    # deferred `replace_rows` group, a (sites, head) matrix of the new rows' words, site by site
    aux: list[tuple[int, Any]]  # (slot in the block, aux) of new instructions that carry some


def block(prep: Prepared | GroupPatch | InsertGroup, sites: np.ndarray) -> Block | None:
    """A deferred patch as one block of slot words, or None when an offset does not fit
    (or for deferred appends, which go after their sites: those are linked).

    A deferred `replace_rows` group (`Deferred.defer_rows`) is its rows'
    words as they are: one slot each, referencing nothing; the site, a
    node of the list, keeps its own target and is relocated with the list.
    """
    if type(prep) is GroupPatch:
        return Block(sites, prep.k, np.frombuffer(prep.head_w0, dtype=np.uint64).reshape(len(sites), prep.k), [])
    keep_site = type(prep) is InsertGroup
    if keep_site:
        if not prep.before:
            return None
        prep = prep.prep
    slot_of, width = [], 0
    for wide in prep.wide:
        slot_of.append(width)
        width += 1 + wide
    words = np.zeros(width, dtype=np.uint64)
    for i, s in enumerate(slot_of):
        words[s] = prep.w0[i]
        if prep.wide[i]:
            words[s + 1] = prep.w1[i]
    for ref in prep.refs:  # deferred patches hold ToItem and ToNext references only
        i = ref.item
        rel = (width if isinstance(ref, ToNext) else slot_of[ref.dest]) - slot_of[i] - 1
        w = int(words[slot_of[i]])
        if TARGET_OF[(w & 0xFF) << 4 | (w >> 12) & 0xF] == Target.OFF:
            if not _S16[0] <= rel <= _S16[1]:
                return None
            w = (w & ~(0xFFFF << 16)) | (rel & 0xFFFF) << 16
        else:
            if not _S32[0] <= rel <= _S32[1]:
                return None
            w = (w & 0xFFFFFFFF) | (rel & 0xFFFFFFFF) << 32
        words[slot_of[i]] = w
    aux = [(slot_of[i], a) for i, a in enumerate(prep.aux) if a is not None]
    return Block(sites, width if keep_site else slot_of[-1], words, aux)
