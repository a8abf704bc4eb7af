"""Long-jump relaxation in bulk (`apply.relax`'s NumPy path) gives the list one-at-a-time relaxation gives."""

from __future__ import annotations

import random

import numpy as np
import pytest

from bpfpatch.isa import Insn
from bpfpatch.patch import SITE, PatchList, Row, apply
from bpfpatch.program import Program


def far_jumps(seed: int, n: int = 14_000) -> Program:
    """Adds with jumps of every relaxable kind (ja, conditional K/X, JMP32, jset, may_goto) up to 5,000 back or on."""
    rnd = random.Random(seed)
    insns = [Insn(0xB7, 1, 0, 0, 0)]
    for i in range(1, n - 1):
        if rnd.random() < 0.06:
            op = rnd.choice([0x05, 0x15, 0x1D, 0x55, 0x25, 0xA5, 0x16, 0x56, 0x45, 0x2D, 0xB5, 0x66, 0xE5])
            off = rnd.randrange(max(1, i - 5_000), min(n - 1, i + 5_000)) - i - 1
            if op in (0x05, 0xE5):
                insns.append(Insn(op, 0, 0, off, 0))
            elif op & 0x08:
                insns.append(Insn(op, 1, 2, off, 0))
            else:
                insns.append(Insn(op, 1, 0, off, 3))
        else:
            insns.append(Insn(0x07, 1, 0, 0, 1))
    return Program.from_insns(insns + [Insn(0x95)])


def blown_up(prog: Program, how: str) -> PatchList:
    """Seven new instructions before every add: offsets of up to 5,000 grow past 32,767."""
    pl = PatchList(prog)
    extra = [Insn(0xB7, 3, 0, 0, k) for k in range(7)]
    if how == "rows":
        ids = pl.live_ids()
        w0, _ = pl.words(ids)
        pl.replace_rows(ids[(w0 & np.uint64(0xFF)) == 0x07], [Row(0xB7, dst=3, imm=k) for k in range(7)] + [SITE])
    else:
        for node in list(pl):
            if node.insn.code == 0x07:
                pl.prepend(node, extra)
    return pl


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("how", ["rows", "prepend"])
def test_bulk_relaxation_equals_one_at_a_time(monkeypatch, seed, how):
    prog = far_jumps(seed)
    bulk = blown_up(prog, how)
    out = bulk.linearize(relax_long_jumps=True)
    bulk.check()  # the order cache told of the new gotols equals a fresh walk
    monkeypatch.setattr(apply, "_relax_common", lambda store, ids, note: ids)  # every jump one at a time
    single = blown_up(prog, how)
    assert out.to_bytes() == single.linearize(relax_long_jumps=True).to_bytes()
    codes = out.slots["code"]
    assert (codes == 0x06).sum() > 16  # gotols were made (enough for the bulk path)
