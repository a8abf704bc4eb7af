"""Scratch registers for passes that need one (blind, div-guard's signed guards)."""

from __future__ import annotations

from bpfpatch.errors import PatchError
from bpfpatch.isa.opcodes import AX_REG
from bpfpatch.passes.base import PassContext
from bpfpatch.patch import PatchList

# Callee-saved first: a register the program never names is the safest scratch.
AUTO_ORDER = (9, 8, 7, 6, 5, 4, 3, 2, 1)


def used_registers(pl: PatchList) -> set[int]:
    used: set[int] = set()
    for node in pl:
        i = node.insn
        used.add(i.dst)
        used.add(i.src)
    return used


def free_register(pl: PatchList) -> int:
    """A register no instruction of the list reads or writes ("--aux-reg auto")."""
    used = used_registers(pl)
    for r in AUTO_ORDER:
        if r not in used:
            return r
    raise PatchError("no free register for --aux-reg auto: every register r1-r9 is used by the program")


def resolve_aux_reg(pl: PatchList, ctx: PassContext) -> int:
    """The scratch register the context asks for, checked."""
    if ctx.aux_reg == "auto":
        return free_register(pl)
    reg = int(ctx.aux_reg)
    if reg == AX_REG:
        return reg
    if not 0 <= reg <= 9:
        raise PatchError(f"--aux-reg {reg}: must be 0-9, 11 (the kernel's AX) or auto")
    if reg in used_registers(pl):
        raise PatchError(f"--aux-reg {reg}: the program uses r{reg}; clobbering it would change the program (try auto)")
    return reg
