"""Assembly text never wraps: a number that does not fit its field is an error naming line and column."""

from __future__ import annotations

import pytest

from bpfpatch.asm import assemble, parse_insn
from bpfpatch.errors import AsmError
from bpfpatch.isa import Insn


@pytest.mark.parametrize(
    "text, column, words",
    [
        ("r0 = 4294967296", 6, "imm 4294967296 is out of range"),
        ("r1 = *(u64 *)(r10 - 40000)", 19, "off -40000 is out of range"),
        ("*(u32 *)(r10 + 32768) = r1", 14, "off +32768 is out of range"),
        ("if r1 > 4294967296 goto +1", 9, "imm 4294967296"),
        ("goto +40000", 6, "off +40000"),
        ("r0 = 18446744073709551616 ll", 6, "imm 18446744073709551616"),
        ("(b7) r0 = 0x100000000", 11, "imm 0x100000000"),
        ("r11 = 1", 1, "kernel-internal register"),
        ("  w11 += 1", 3, "kernel-internal register"),
        ("r0 = r11", 6, "kernel-internal register"),
        ("r0 = " + "9" * 5000, 6, "too long"),
    ],
)
def test_out_of_range_is_an_error_with_line_and_column(text, column, words):
    with pytest.raises(AsmError) as err:
        assemble("r9 = 0\n" + text + "\nexit")
    assert err.value.line == 2
    assert err.value.column == column
    assert words in str(err.value)
    assert str(err.value).startswith(f"line 2, column {column}: ")
    assert len(str(err.value)) < 300  # a 5,000-digit line is not echoed whole


@pytest.mark.parametrize(
    "text, insn",
    [
        ("r0 = 4294967295", Insn(0xB7, 0, 0, 0, -1)),  # the u32 spelling of -1
        ("r0 = -2147483648", Insn(0xB7, 0, 0, 0, -(1 << 31))),
        ("*(u64 *)(r10 - 32768) = r1", Insn(0x7B, 10, 1, -32768, 0)),
        ("r1 = *(u8 *)(r2 + 32767)", Insn(0x71, 1, 2, 32767, 0)),
        ("r0 = 18446744073709551615 ll", Insn(0x18, 0, 0, 0, -1)),
        ("r0 = -9223372036854775808 ll", Insn(0x18, 0, 0, 0, -(1 << 63))),
        ("r0 = 007", Insn(0xB7, 0, 0, 0, 7)),  # leading zeros read as decimal, not a ValueError
        ("if w1 == 0xffffffff goto +2", Insn(0x16, 1, 0, 2, -1)),
    ],
)
def test_edges_of_each_range_assemble(text, insn):
    assert assemble(text) == [insn]


def test_kernel_register_only_when_asked_for():
    assert assemble("r11 = r1\nr11 += 1", ax=True) == [Insn(0xBF, 11, 1), Insn(0x07, 11, 0, 0, 1)]
    assert parse_insn("w11 += 1", ax=True) == Insn(0x04, 11, 0, 0, 1)
    with pytest.raises(AsmError):
        parse_insn("w11 += 1")


def test_listing_line_with_two_instructions_is_an_error():
    one = "       0:\tb7 00 00 00 01 00 00 00\tr0 = 1"
    two = "       1:\tb7 00 00 00 01 00 00 00 b7 00 00 00 02 00 00 00\tr0 = 1"
    with pytest.raises(AsmError, match="line 2: listing line holds 2 instructions"):
        assemble(one + "\n" + two)
    lddw = "       0:\t18 01 00 00 01 00 00 00 00 00 00 00 02 00 00 00\tr1 = 8589934593 ll"
    assert assemble(lddw) == [Insn(0x18, 1, 0, 0, (2 << 32) | 1)]


def test_listing_bytes_naming_the_kernel_register_need_ax():
    line = "       0:\tb7 0b 00 00 01 00 00 00\tr11 = 1"
    with pytest.raises(AsmError, match="register"):
        assemble(line)
    assert assemble(line, ax=True) == [Insn(0xB7, 11, 0, 0, 1)]


def test_listing_bytes_that_do_not_decode_are_an_asm_error():
    with pytest.raises(AsmError, match="line 1: listing bytes"):
        assemble("       0:\t18 01 00 00 01 00 00 00\tr1 = 1 ll")  # half an ld_imm64


def test_label_too_far_for_a_16_bit_jump():
    text = "goto far\n" + "r0 = 0\n" * 40000 + "far:\nexit"
    with pytest.raises(AsmError, match="line 1: label 'far' is 40000 slots away"):
        assemble(text)
    assert assemble(text.replace("goto far", "gotol far"))[0] == Insn(0x06, 0, 0, 0, 40000)


def test_cli_asm_reports_the_place_and_writes_nothing(tmp_path):
    from bpfpatch.cli import main

    src = tmp_path / "bad.s"
    src.write_text("r0 = 1\n*(u64 *)(r10 - 40000) = r1\nexit\n")
    out = tmp_path / "out.bin"
    assert main(["asm", str(src), "-o", str(out)]) == 1
    assert not out.exists()
    src.write_text("r11 = 1\nexit\n")
    assert main(["asm", str(src), "-o", str(out), "--ax"]) == 0
    assert out.read_bytes()[:2] == b"\xb7\x0b"
