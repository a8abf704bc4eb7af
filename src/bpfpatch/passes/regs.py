"""Scratch registers for passes that need one (blind, div-guard's signed guards)."""

from __future__ import annotations

import numpy as np

from bpfpatch.errors import PatchError
from bpfpatch.isa import distinct_bytes
from bpfpatch.isa.opcodes import AX_REG
from bpfpatch.passes.base import PassContext
from bpfpatch.patch import PatchList

# Callee-saved first: a register the program never names is the safest scratch.
AUTO_ORDER = (9, 8, 7, 6, 5, 4, 3, 2, 1)


def used_registers(pl: PatchList) -> set[int]:
    """Every register a live instruction names as dst or src (pseudo sources included)."""
    w0, _ = pl.words(pl.live_ids())
    return registers_named(((w0 >> np.uint64(8)) & np.uint64(0xFF)).astype(np.uint8))


def registers_named(regs: np.ndarray) -> set[int]:
    """The registers an array of ``regs`` bytes (dst low nibble, src high nibble) names."""
    pairs = distinct_bytes(regs)
    return {r & 0x0F for r in pairs} | {r >> 4 for r in pairs}


def free_register(pl: PatchList | None, used: set[int] | None = None) -> int:
    """A register no instruction of the list reads or writes ("--aux-reg auto")."""
    used = used_registers(pl) if used is None else used
    for r in AUTO_ORDER:
        if r not in used:
            return r
    raise PatchError("no free register for --aux-reg auto: every register r1-r9 is used by the program")


def resolve_aux_reg(pl: PatchList | None, ctx: PassContext, used: set[int] | None = None) -> int:
    """The scratch register the context asks for, checked (`used`: the program's registers, if known)."""
    if ctx.aux_reg == "auto":
        return free_register(pl, used)
    reg = int(ctx.aux_reg)
    if reg == AX_REG:
        return reg
    if not 0 <= reg <= 9:
        raise PatchError(f"--aux-reg {reg}: must be 0-9, 11 (the kernel's AX) or auto")
    if reg in (used_registers(pl) if used is None else used):
        raise PatchError(f"--aux-reg {reg}: the program uses r{reg}; clobbering it would change the program (try auto)")
    return reg
