"""Instructions -> text: one line per instruction, or an objdump-like listing."""

from __future__ import annotations

from typing import Iterable

from bpfpatch.asm.syntax import format_kernel, format_llvm
from bpfpatch.isa import Insn, insns_to_slots, encode_slots
from bpfpatch.program import Program

STYLES = ("llvm", "kernel")


def format_insn(insn: Insn, style: str = "llvm", pc: int | None = None) -> str:
    """One instruction in `style`."""
    if style == "llvm":
        return format_llvm(insn)
    if style == "kernel":
        return format_kernel(insn, pc)
    raise ValueError(f"unknown style {style!r} (llvm or kernel)")


def _insns(program: Program | Iterable[Insn]) -> list[Insn]:
    return program.insns if isinstance(program, Program) else list(program)


def disasm(program: Program | Iterable[Insn], style: str = "llvm") -> list[str]:
    """One text line per instruction (no addresses): exactly llvm-objdump's text in llvm style."""
    return [format_insn(i, style) for i in _insns(program)]


def listing(program: Program | Iterable[Insn], style: str = "llvm", *, source: dict[int, str] | None = None) -> list[str]:
    """``llvm-objdump -d``-like lines: slot, hex bytes, text (kernel style: ``slot: (code) text``).

    `source` maps slots to source lines to interleave (``--source``).
    """
    out: list[str] = []
    slot = 0
    for insn in _insns(program):
        if source and slot in source:
            out.append(f"; {source[slot]}")
        if style == "kernel":
            out.append(f"{slot}: {format_kernel(insn, slot)}")
        else:
            raw = encode_slots(insns_to_slots([insn]))
            hexes = " ".join(f"{b:02x}" for b in raw)
            out.append(f"{slot:>8}:\t{hexes}\t{format_llvm(insn)}")
        slot += insn.nslots
    return out
