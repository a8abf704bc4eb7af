"""Text assembly: table cases per opcode family, llvm-objdump agreement on clang-built
programs (-mcpu=v1..v4), exact round trips, and typed errors for bad input."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfpatch import DecodeError, Insn, Program
from bpfpatch.asm import assemble, disasm, format_insn, listing, parse_insn
from bpfpatch.asm.shapes import _variants
from bpfpatch.elf import read_object
from bpfpatch.errors import AsmError
from bpfpatch.isa import insns_to_slots, validate_slots
from conftest import PROGS, compile_bpf


def raw(*rows):
    return b"".join(struct.pack("<BBhi", c, d | (s << 4), o, i) for c, d, s, o, i in rows)


# (bytes of one instruction as [code, dst, src, off, imm] rows, llvm-objdump text, verifier-log text)
TABLE = [
    ([(0xB7, 0, 0, 0, 7)], "r0 = 7", "(b7) r0 = 7"),
    ([(0xBF, 1, 10, 0, 0)], "r1 = r10", "(bf) r1 = r10"),
    ([(0x07, 2, 0, 0, -4)], "r2 += -4", "(07) r2 += -4"),
    ([(0x04, 1, 0, 0, -5)], "w1 += -5", "(04) w1 += -5"),
    ([(0x3F, 0, 1, 0, 0)], "r0 /= r1", "(3f) r0 /= r1"),
    ([(0x3F, 0, 1, 1, 0)], "r0 s/= r1", "(3f) r0 s/= r1"),
    ([(0x9C, 0, 1, 1, 0)], "w0 s%= w1", "(9c) w0 s%= w1"),
    ([(0xBF, 1, 2, 8, 0)], "r1 = (s8)r2", "(bf) r1 = (s8)r2"),
    ([(0xBC, 1, 2, 16, 0)], "w1 = (s16)w2", "(bc) w1 = (s16)w2"),
    ([(0x87, 1, 0, 0, 0)], "r1 = -r1", "(87) r1 = -r1"),
    ([(0xBF, 1, 2, 1, 0x10000)], "r1 = addr_space_cast(r2, 1, 0)", "(bf) r1 = addr_space_cast(r2, 1, 0)"),
    ([(0xC7, 1, 0, 0, 63)], "r1 s>>= 63", "(c7) r1 s>>= 63"),
    ([(0xD4, 1, 0, 0, 16)], "r1 = le16 r1", "(d4) r1 = le16 r1"),
    ([(0xDC, 1, 0, 0, 32)], "r1 = be32 r1", "(dc) r1 = be32 r1"),
    ([(0xD7, 1, 0, 0, 64)], "r1 = bswap64 r1", "(d7) r1 = bswap64 r1"),
    ([(0x05, 0, 0, -3, 0)], "goto -3", "(05) goto pc-3"),
    ([(0x06, 0, 0, 0, 70000)], "gotol +70000", "(06) gotol pc+70000"),
    ([(0xE5, 0, 0, 5, 0)], "may_goto +5", "(e5) may_goto pc+5"),
    ([(0x55, 1, 0, 2, 0)], "if r1 != 0 goto +2", "(55) if r1 != 0x0 goto pc+2"),
    ([(0x16, 1, 0, 2, -1)], "if w1 == -1 goto +2", "(16) if w1 == 0xffffffff goto pc+2"),
    ([(0x6D, 1, 2, -2, 0)], "if r1 s> r2 goto -2", "(6d) if r1 s> r2 goto pc-2"),
    ([(0x45, 1, 0, 2, 16)], "if r1 & 16 goto +2", "(45) if r1 & 0x10 goto pc+2"),
    ([(0x85, 0, 0, 0, 1)], "call 1", "(85) call bpf_map_lookup_elem#1"),
    ([(0x85, 0, 1, 0, 3)], "call 3", "(85) call pc+3"),
    ([(0x85, 0, 2, 0, 1234)], "call 1234", "(85) call kfunc#1234"),
    ([(0x95, 0, 0, 0, 0)], "exit", "(95) exit"),
    ([(0x61, 1, 2, 4, 0)], "r1 = *(u32 *)(r2 + 4)", "(61) r1 = *(u32 *)(r2 +4)"),
    ([(0x91, 1, 2, 4, 0)], "r1 = *(s8 *)(r2 + 4)", "(91) r1 = *(s8 *)(r2 +4)"),
    ([(0x63, 10, 1, -4, 0)], "*(u32 *)(r10 - 4) = r1", "(63) *(u32 *)(r10 -4) = r1"),
    ([(0x7A, 10, 0, -8, -1)], "*(u64 *)(r10 - 8) = -1", "(7a) *(u64 *)(r10 -8) = -1"),
    ([(0xDB, 1, 2, 0, 0x00)], "lock *(u64 *)(r1 + 0) += r2", "(db) lock *(u64 *)(r1 +0) += r2"),
    ([(0xDB, 1, 2, 4, 0x01)], "r2 = atomic_fetch_add((u64 *)(r1 + 4), r2)", "(db) r2 = atomic64_fetch_add((u64 *)(r1 +4), r2)"),
    ([(0xC3, 1, 2, 4, 0xA1)], "w2 = atomic_fetch_xor((u32 *)(r1 + 4), w2)", "(c3) w2 = atomic_fetch_xor((u32 *)(r1 +4), w2)"),
    ([(0xDB, 1, 2, 4, 0xE1)], "r2 = xchg_64(r1 + 4, r2)", "(db) r2 = atomic64_xchg((u64 *)(r1 +4), r2)"),
    ([(0xC3, 1, 2, 4, 0xF1)], "w0 = cmpxchg32_32(r1 + 4, w0, w2)", "(c3) w0 = atomic_cmpxchg((u32 *)(r1 +4), w0, w2)"),
    ([(0x20, 0, 0, 0, 4)], "r0 = *(u32 *)skb[4]", "(20) r0 = *(u32 *)skb[4]"),
    ([(0x18, 1, 0, 0, 5), (0, 0, 0, 0, 1)], "r1 = 4294967301 ll", "(18) r1 = 0x100000005"),
    ([(0x18, 1, 2, 0, 5), (0, 0, 0, 0, 8)], "ld_pseudo r1, 2, 5", "(18) r1 = pseudo2[0x5, 0x8]"),
]


@pytest.mark.parametrize("rows, llvm, kernel", TABLE, ids=[t[1] for t in TABLE])
def test_table(rows, llvm, kernel):
    prog = Program.from_bytes(raw(*rows), validate=False)
    validate_slots(prog.slots)  # valid encoding (the jump targets lie outside this 1-insn program)
    (insn,) = prog.insns
    assert format_insn(insn, "llvm") == llvm
    assert format_insn(insn, "kernel") == kernel
    assert parse_insn(kernel) == insn  # the verifier form is lossless
    back = parse_insn(llvm)
    lossy = {"call 3": "src", "call 1234": "src", "ld_pseudo r1, 2, 5": "imm"}  # as LLVM prints them
    if llvm not in lossy:
        assert back == insn
    assert insns_to_slots([insn]).tobytes() == raw(*rows)


@pytest.mark.parametrize(
    "data, index, message",
    [
        (raw((0x00, 0, 0, 0, 0)), 0, "unknown opcode"),
        (raw((0xB7, 0, 0, 0, 1), (0xFF, 0, 0, 0, 0)), 1, "unknown opcode"),
        (raw((0xB7, 0, 1, 0, 1)), 0, "reserved field src"),
        (raw((0x95, 0, 0, 0, 1)), 0, "reserved field imm"),
        (raw((0xB7, 0, 0, 0, 1), (0x18, 1, 0, 0, 1)), 1, "truncated ld_imm64"),
        (raw((0xB7, 12, 0, 0, 1)), 0, "register"),
        (raw((0x05, 0, 0, 5, 0), (0x95, 0, 0, 0, 0)), 0, "outside the program"),
        (raw((0x95, 0, 0, 0, 0)) + b"\x01\x02", 1, "not a multiple of 8"),
    ],
)
def test_bad_input_names_the_instruction(data, index, message):
    with pytest.raises(DecodeError, match=message) as info:
        Program.from_bytes(data)
    assert info.value.index == index


def test_every_opcode_variant_round_trips_in_kernel_style():
    for v in _variants():
        for cand in (v, v._replace(dst=v.dst and 7, src=v.src and 2)):
            assert parse_insn(format_insn(cand, "kernel")) == cand


def test_labels_and_comments():
    text = """
    ; count down
    r1 = 3            // start
    loop:
      r1 -= 1
      if r1 != 0 goto loop
      call helper
      exit
    helper:
      r0 = 0
      exit
    """
    insns = assemble(text)
    assert insns[2] == Insn(0x55, 1, 0, -2, 0)
    assert insns[3] == Insn(0x85, 0, 1, 0, 1)  # pseudo call to the label


def test_unknown_line_is_an_asm_error_with_its_line():
    with pytest.raises(AsmError, match="line 2"):
        assemble("r0 = 1\nr0 = frobnicate\nexit")


# --- against llvm-objdump on clang-built programs ---------------------------------------

CPUS = [("v1", "clang", "llvm-objdump"), ("v2", "clang", "llvm-objdump"), ("v3", "clang", "llvm-objdump"),
        ("v3", "clang-19", "llvm-objdump-19"), ("v4", "clang-19", "llvm-objdump-19")]


def _objdump(path, tool):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    args = [tool, "-d", "--no-show-raw-insn"] + (["--no-print-imm-hex"] if tool.endswith("19") else []) + [str(path)]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    secs, cur = {}, None
    for line in out.splitlines():
        m = re.match(r"Disassembly of section (.*):", line)
        if m:
            cur = secs.setdefault(m.group(1), [])
            continue
        m = re.match(r"\s*\d+:\s+(.*)$", line)
        if m and cur is not None:
            cur.append(" ".join(re.sub(r"\s+<[^<>\s]+>$", "", m.group(1)).split()))
    return secs


@pytest.mark.parametrize("src", ["asm/features.c", "kernel/filters.c"])
@pytest.mark.parametrize("cpu, clang, objdump", CPUS, ids=[f"{c[0]}-{c[1]}" for c in CPUS])
def test_llvm_style_equals_objdump(src, cpu, clang, objdump, objdir):
    path = compile_bpf(PROGS / src, objdir, cpu=cpu, clang=clang)
    ref = _objdump(path, objdump)
    obj = read_object(path)
    assert obj.programs
    for name, prog in obj.programs.items():
        ours = [" ".join(x.split()) for x in disasm(prog, "llvm")]
        assert ours == ref[name], name
        # Listings (address, hex, text) and the verifier form round-trip byte for byte.
        assert insns_to_slots(assemble("\n".join(listing(prog)))).tobytes() == prog.to_bytes()
        assert insns_to_slots(assemble("\n".join(disasm(prog, "kernel")))).tobytes() == prog.to_bytes()


def test_objdump_output_assembles_as_is(objdir):
    path = compile_bpf(PROGS / "asm/features.c", objdir, cpu="v3")
    out = subprocess.run(["llvm-objdump", "-d", str(path)], capture_output=True, text=True).stdout
    text_part = out.split("Disassembly of section socket:")[0]
    assert assemble(text_part) == read_object(path).programs[".text"].insns


# --- properties -----------------------------------------------------------------------

VARIANTS = _variants()


@st.composite
def insns(draw):
    v = draw(st.sampled_from(VARIANTS))
    dst = draw(st.integers(0, 10)) if v.dst else 0
    src = draw(st.integers(0, 10)) if v.src and v.code != 0x85 and v.code != 0x18 else v.src
    off = draw(st.integers(-(1 << 15), (1 << 15) - 1)) if v.off == 4321 else v.off
    if v.imm == 98765:
        imm = draw(st.integers(-(1 << 31), (1 << 31) - 1))
    elif v.code == 0x18:
        imm = draw(st.integers(-(1 << 63), (1 << 63) - 1))
    else:
        imm = v.imm
    return Insn(v.code, dst, src, off, imm)


@settings(max_examples=400, deadline=None)
@given(st.lists(insns(), min_size=1, max_size=20))
def test_decode_encode_and_text_round_trip(stream):
    data = insns_to_slots(stream).tobytes()
    prog = Program.from_bytes(data, validate=False)
    assert prog.insns == stream
    assert assemble("\n".join(disasm(prog, "kernel"))) == stream
    assert assemble("\n".join(listing(prog))) == stream


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=96))
def test_random_bytes_give_only_decode_errors(data):
    try:
        Program.from_bytes(data)
    except DecodeError:
        pass
