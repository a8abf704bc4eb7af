"""`bpfpatch patch`: formats in and out, options, one-line errors, atomic output."""

from __future__ import annotations

import struct

import pytest

from bpfpatch import Insn, Program
from bpfpatch.cli import main
from bpfpatch.isa import slot_rows
from bpfpatch.passes import PassContext, run_passes


def raw(*insns: Insn) -> bytes:
    return Program.from_insns(list(insns)).to_bytes()


# Signed and unsigned divisions, dead code, and an immediate to blind.
PROG = raw(Insn(0xB7, 0, 0, 0, 7), Insn(0xB7, 1, 0, 0, 2), Insn(0x3F, 0, 1, 1, 0), Insn(0x9C, 0, 1),
           Insn(0xB7, 2, 0, 0, 1), Insn(0x15, 2, 0, 1, 1), Insn(0xB7, 0, 0, 0, 99), Insn(0x95))


@pytest.fixture
def src(tmp_path):
    p = tmp_path / "in.bin"
    p.write_bytes(PROG)
    return p


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("bpfpatch: error:")
    return err[0]


def test_repeated_pass_options_run_every_pass_in_order(src, tmp_path):
    # `--pass a --pass b` is `--pass a,b` (it used to keep only the last one, silently)
    one, two = tmp_path / "one.bin", tmp_path / "two.bin"
    assert main(["patch", str(src), "-o", str(one), "--pass", "div-guard,dce,blind", "--aux-reg", "11"]) == 0
    assert main(["patch", str(src), "-o", str(two), "--pass", "div-guard", "--pass", "dce,blind", "--aux-reg", "11"]) == 0
    assert one.read_bytes() == two.read_bytes()
    want = run_passes(Program.from_bytes(PROG), ["div-guard", "dce", "blind"], PassContext(aux_reg=11))
    assert one.read_bytes() == want.to_bytes()


def test_raw_in_raw_out_equals_the_library(src, tmp_path):
    out = tmp_path / "out.bin"
    assert main(["patch", str(src), "-o", str(out), "--pass", "div-guard,dce", "--aux-reg", "11"]) == 0
    want = run_passes(Program.from_bytes(PROG), ["div-guard", "dce"])
    assert out.read_bytes() == want.to_bytes()
    rows = slot_rows(Program.from_bytes(out.read_bytes(), max_reg=11).slots)
    assert (0xBF, 11, 1, 0, 0) in rows  # AX = r1: the signed guard with the kernel's register
    assert (0xB7, 0, 0, 0, 99) not in rows  # dead


def test_all_passes_with_seed(src, tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    args = ["patch", str(src), "--pass", "blind,div-guard,dce", "--aux-reg", "auto"]
    assert main([*args, "-o", str(a), "--seed", "5"]) == 0
    assert main([*args, "-o", str(b), "--seed", "5"]) == 0
    assert main([*args, "-o", str(c), "--seed", "6"]) == 0
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    want = run_passes(Program.from_bytes(PROG), ["blind", "div-guard", "dce"], PassContext(seed=5, aux_reg="auto"))
    assert a.read_bytes() == want.to_bytes()


@pytest.mark.parametrize("reg, want", [("9", 9), ("r8", 8), ("auto", 9), ("11", 11)])
def test_aux_reg(src, tmp_path, reg, want):
    out = tmp_path / "o"
    assert main(["patch", str(src), "-o", str(out), "--pass", "div-guard", "--aux-reg", reg]) == 0
    rows = slot_rows(Program.from_bytes(out.read_bytes(), max_reg=11).slots)
    assert rows[2] == (0xBF, want, 1, 0, 0)


@pytest.mark.parametrize("reg, message", [("x", "expected a register number"), ("10", "expected a register number"),
                                          ("1", "the program uses r1")])
def test_bad_aux_reg(src, tmp_path, capsys, reg, message):
    out = tmp_path / "o"
    assert main(["patch", str(src), "-o", str(out), "--pass", "div-guard", "--aux-reg", reg]) == 1
    assert message in _err_line(capsys)
    assert not out.exists()


def test_unknown_pass_one_line_no_output(src, tmp_path, capsys):
    out = tmp_path / "o.bin"
    out.write_bytes(b"previous")
    assert main(["patch", str(src), "-o", str(out), "--pass", "div-guard,nope"]) == 1
    line = _err_line(capsys)
    assert "unknown pass 'nope'" in line and "div-guard" in line
    assert out.read_bytes() == b"previous"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.bin", "o.bin"]  # no temp file left


def test_unknown_pass_wins_over_a_missing_input(tmp_path, capsys):
    assert main(["patch", str(tmp_path / "missing"), "-o", str(tmp_path / "o"), "--pass", "nope"]) == 1
    assert "unknown pass" in _err_line(capsys)


def test_failure_keeps_the_previous_output(tmp_path, capsys):
    every = tmp_path / "every.bin"  # every register in use: auto has none to give
    every.write_bytes(raw(*[Insn(0xB7, r, 0, 0, 2) for r in range(10)], Insn(0x3F, 0, 1, 1, 0), Insn(0x95)))
    out = tmp_path / "o.bin"
    out.write_bytes(b"previous")
    assert main(["patch", str(every), "-o", str(out), "--pass", "div-guard", "--aux-reg", "auto"]) == 1
    assert "no free register" in _err_line(capsys)
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["every.bin", "o.bin"]


def test_missing_input_and_empty_pass_list(tmp_path, capsys):
    assert main(["patch", str(tmp_path / "missing"), "-o", str(tmp_path / "o"), "--pass", "dce"]) == 1
    assert "missing" in _err_line(capsys)
    (tmp_path / "p").write_bytes(PROG)
    assert main(["patch", str(tmp_path / "p"), "-o", str(tmp_path / "o"), "--pass", ","]) == 1
    assert "at least one pass" in _err_line(capsys)
    assert main(["patch", str(tmp_path / "p"), "-o", str(tmp_path / "o")]) == 0  # no --pass: the identity
    assert (tmp_path / "o").read_bytes() == PROG


def test_assembly_text_in(tmp_path):
    s = tmp_path / "p.s"
    s.write_text("r0 = 7\nr1 = 2\nr0 /= r1\nexit\n")
    out = tmp_path / "o.bin"
    assert main(["patch", str(s), "-o", str(out), "--pass", "div-guard"]) == 0
    assert slot_rows(Program.from_bytes(out.read_bytes()).slots)[2:6] == [
        (0x55, 1, 0, 2, 0), (0xAC, 0, 0, 0, 0), (0x05, 0, 0, 1, 0), (0x3F, 0, 1, 0, 0)]


def test_relax_long_jumps(tmp_path, capsys):
    body = [Insn(0x3F, 0, 1)] * 9000
    p = tmp_path / "long.bin"
    p.write_bytes(raw(Insn(0x85, 0, 0, 0, 7), Insn(0xB7, 1, 0, 0, 3), Insn(0x15, 0, 0, len(body), 0), *body, Insn(0x95)))
    out = tmp_path / "o.bin"
    assert main(["patch", str(p), "-o", str(out), "--pass", "div-guard"]) == 1
    assert "16 bits" in _err_line(capsys)
    assert not out.exists()
    assert main(["patch", str(p), "-o", str(out), "--pass", "div-guard", "--relax-long-jumps"]) == 0
    rows = slot_rows(Program.from_bytes(out.read_bytes()).slots)
    assert any(c == 0x06 for c, *_ in rows)  # gotol


C_SRC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("socket")
int sock_div(struct __sk_buff *skb)
{
	__u8 b = 0;
	bpf_skb_load_bytes(skb, 0, &b, 1);
	return skb->len / ((__u32)b + 1) + (skb->len % ((__u32)b + 3));
}

SEC("socket/two")
int sock_mod(struct __sk_buff *skb)
{
	return skb->len % (skb->protocol + 1);
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture
def elf(tmp_path, objdir):
    from conftest import compile_bpf

    c = tmp_path / "divs.c"
    c.write_text(C_SRC)
    return compile_bpf(c, objdir)


def test_elf_in_elf_out_every_section(elf, tmp_path):
    from bpfpatch.elf import read_object

    out = tmp_path / "out.o"
    assert main(["patch", str(elf), "-o", str(out), "--pass", "div-guard,dce"]) == 0
    before, after = read_object(elf), read_object(out)
    assert set(after.programs) == set(before.programs) == {"socket", "socket/two"}
    for name, prog in before.programs.items():
        want = run_passes(prog, ["div-guard", "dce"])
        assert after.programs[name].to_bytes() == want.to_bytes(), name
        assert len(want.insns) > len(prog.insns)  # guarded


def test_elf_one_section(elf, tmp_path, capsys):
    from bpfpatch.elf import read_object

    out = tmp_path / "out.o"
    assert main(["patch", str(elf), "-o", str(out), "--pass", "div-guard", "--section", "socket/two"]) == 0
    before, after = read_object(elf), read_object(out)
    assert after.programs["socket"].to_bytes() == before.programs["socket"].to_bytes()
    assert after.programs["socket/two"].to_bytes() != before.programs["socket/two"].to_bytes()
    capsys.readouterr()
    assert main(["patch", str(elf), "-o", str(tmp_path / "x.o"), "--pass", "dce", "--section", "nope"]) == 1
    assert "nope" in _err_line(capsys)
    assert not (tmp_path / "x.o").exists()


def test_elf_in_raw_out(elf, tmp_path):
    from bpfpatch.loader import read_program

    out = tmp_path / "sock.bin"
    assert main(["patch", str(elf), "-o", str(out), "--pass", "div-guard", "--section", "socket"]) == 0
    assert out.read_bytes() == run_passes(read_program(elf, section="socket"), ["div-guard"]).to_bytes()


@pytest.mark.kernel
def test_patched_object_loads_and_behaves_the_same(elf, tmp_path, capsys):
    out = tmp_path / "out.o"
    assert main(["patch", str(elf), "-o", str(out), "--pass", "div-guard,dce", "--aux-reg", "auto"]) == 0
    for section in ("socket", "socket/two"):
        assert main(["check", str(elf), str(out), "--section", section]) == 0, capsys.readouterr()
        assert "no difference found" in capsys.readouterr().out


def test_raw_output_is_exactly_the_slots(src, tmp_path):
    out = tmp_path / "o"
    assert main(["patch", str(src), "-o", str(out), "--pass", "dce"]) == 0
    data = out.read_bytes()
    assert len(data) % 8 == 0
    assert [struct.unpack_from("<B", data, i)[0] for i in range(0, len(data), 8)][-1] == 0x95
