"""The column-built listing is, line for line, the per-instruction printer's output."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bpfpatch import Insn, Program
from bpfpatch.asm import disasm, listing
from bpfpatch.asm.disasm import listing_bytes, listing_chunks
from bpfpatch.asm.shapes import _variants
from bpfpatch.asm.syntax import format_kernel, format_llvm
from bpfpatch.isa import encode_slots, insns_to_slots


def reference(insns: list[Insn], style: str) -> list[str]:
    out, slot = [], 0
    for insn in insns:
        if style == "kernel":
            out.append(f"{slot}: {format_kernel(insn, slot)}")
        else:
            hexes = " ".join(f"{b:02x}" for b in encode_slots(insns_to_slots([insn])))
            out.append(f"{slot:>8}:\t{hexes}\t{format_llvm(insn)}")
        slot += insn.nslots
    return out


VARIANTS = _variants()  # every printable opcode form


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(VARIANTS), min_size=1, max_size=120), st.sampled_from(["llvm", "kernel"]))
def test_listing_matches_the_per_instruction_printer(insns, style):
    # A plain instruction list: the sentinel variants jump anywhere, a Program would refuse them.
    assert listing(insns, style) == reference(insns, style)
    assert disasm(insns, style) == [format_llvm(i) if style == "llvm" else format_kernel(i) for i in insns]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(VARIANTS), min_size=1, max_size=60), st.sampled_from(["llvm", "kernel"]),
       st.integers(1, 9))
def test_listing_in_chunks_is_the_listing_cut_at_line_ends(insns, style, lines):
    chunks = list(listing_chunks(insns, style, lines))
    want = [line + "\n" for line in reference(insns, style)]
    assert [c.decode() for c in chunks] == ["".join(want[k : k + lines]) for k in range(0, len(want), lines)]
    assert b"".join(chunks) == listing_bytes(insns, style)


def test_slot_numbers_across_digit_widths_and_source_lines():
    insns = [Insn(0xB7, 1, 0, 0, k % 7) for k in range(12_345)] + [Insn(0x18, 2, 0, 0, -5), Insn(0x95)]
    prog = Program.from_insns(insns)
    for style in ("llvm", "kernel"):
        assert listing(prog, style) == reference(insns, style)
    src = {0: "a.c:1:1  int x;", 9_999: "a.c:2:1  y", 12_345: "a.c:3:1  ld"}
    lines = listing(prog, "llvm", source=src)
    assert lines[0] == "; a.c:1:1  int x;" and lines[1].startswith("       0:\t")
    assert lines[lines.index("; a.c:2:1  y") + 1].startswith("    9999:\t")
    assert lines[-3] == "; a.c:3:1  ld" and lines[-2].startswith("   12345:\t18 02")


def test_empty_program_lists_nothing():
    assert listing([], "llvm") == [] and disasm([], "kernel") == []
