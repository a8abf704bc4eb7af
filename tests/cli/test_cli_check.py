"""`bpfpatch check`: every verdict form, its exit code, --json, --inputs-from, usage errors."""

from __future__ import annotations

import json
import struct

import pytest

from bpfpatch.cli import main
from bpfpatch.kernel.check import Relocated
from bpfpatch.kernel.libbpf import load_object
from bpfpatch.kernel.packets import shapes, write_pcap
from conftest import PROGS, compile_bpf

pytestmark = pytest.mark.kernel

RET1 = struct.pack("<BBhi", 0xB7, 0, 0, 1) + struct.pack("<BBhi", 0x95, 0, 0, 0)
RET2 = struct.pack("<BBhi", 0xB7, 0, 0, 2) + struct.pack("<BBhi", 0x95, 0, 0, 0)


@pytest.fixture(scope="module")
def parse_o(objdir):
    return compile_bpf(PROGS / "check" / "parse.c", objdir)


def _run(capsys, *args) -> tuple[int, str, str]:
    rc = main(["check", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_no_difference_line_with_coverage(capsys, parse_o):
    rc, out, _ = _run(capsys, parse_o, parse_o)
    assert rc == 0
    assert "xdp_parse: no difference found on " in out and "covering 40 of 40 blocks (100%)" in out


def test_different_names_input_and_first_difference(capsys, parse_o, tmp_path):
    with load_object(parse_o) as obj:
        rel = Relocated.of(obj)
    # Turn `return port == 22 ? XDP_DROP : XDP_PASS` style constants: change the compared 53 (DNS drop).
    raw = bytearray(rel.insns)
    for i in range(len(raw) // 8):
        code, regs, off, imm = struct.unpack_from("<BBhi", raw, 8 * i)
        if code & 7 in (5, 6) and imm == 53:
            struct.pack_into("<BBhi", raw, 8 * i, code, regs, off, 54)
    # A rewritten object is what users check; here the rewrite is raw instructions of a
    # program with maps: check says it cannot resolve them (undecided), not "different".
    mut = tmp_path / "mut.bin"
    mut.write_bytes(bytes(raw))
    rc, out, _ = _run(capsys, parse_o, mut)
    assert rc == 2 and "do not reference the same maps" in out
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(RET1)
    b.write_bytes(RET2)
    rc, out, _ = _run(capsys, a, b)
    assert rc == 1
    assert "a: different on input #1 eth/ipv4/tcp (62 bytes eth type 0x0800, ipv4 10.0.0.1 > 10.0.0.2" in out
    assert "return value 1 vs 2" in out and "input hex: 0200000000020200" in out


def test_json_record(capsys, tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(RET1)
    b.write_bytes(RET2)
    rc, out, _ = _run(capsys, a, b, "--json")
    rec = json.loads(out)
    assert rc == 1 and rec["verdict"] == "different" and rec["exit_code"] == 1
    (prog,) = rec["programs"]
    assert prog["difference"]["what"] == "return value 1 vs 2" and prog["difference"]["hex"]
    rc, out, _ = _run(capsys, a, a, "--json")
    assert rc == 0 and json.loads(out)["programs"][0]["verdict"] == "no difference found"


def test_rejected_and_undecided(capsys, tmp_path, objdir):
    refused = compile_bpf(PROGS / "check" / "refused.c", objdir)
    rc, out, _ = _run(capsys, refused, refused)
    assert rc == 3 and "rejected: both programs were refused by the kernel: R1 offset is outside of the packet" in out
    a = tmp_path / "a.bin"
    a.write_bytes(RET1)
    rc, out, _ = _run(capsys, a, a, "--prog-type", "kprobe")
    assert rc == 2 and "undecided: both load, but this kernel has no test run for kprobe programs" in out


def test_usage_and_input_errors_have_their_own_code(capsys, tmp_path, parse_o):
    a = tmp_path / "a.bin"
    a.write_bytes(RET1)
    assert _run(capsys, a, tmp_path / "missing.o")[0] == 64
    assert _run(capsys, a, a, "--inputs", "0")[0] == 64
    assert _run(capsys, a, a, "--inputs", "-3")[0] == 64
    assert _run(capsys, a, a, "--bogus")[0] == 64
    assert _run(capsys, parse_o, parse_o, "--program", "nope")[0] == 64
    bad = tmp_path / "bad.txt"
    bad.write_text("00112233\nnot hex\n")
    rc, _, err = _run(capsys, a, a, "--inputs-from", bad)
    assert rc == 64 and "line 2: not hex" in err


def test_inputs_from_pcap_and_hex(capsys, tmp_path, parse_o):
    pkts = [p for _, p in shapes()[:5]]
    cap = tmp_path / "in.pcap"
    write_pcap(cap, pkts)
    rc, out, _ = _run(capsys, parse_o, parse_o, "--inputs-from", cap)
    assert rc == 0 and "no difference found on 5 inputs" in out
    txt = tmp_path / "in.txt"
    txt.write_text("# one frame per line\n" + "\n".join(p.hex() for p in pkts[:3]) + "\n\n")
    rc, out, _ = _run(capsys, parse_o, parse_o, "--inputs-from", txt)
    assert rc == 0 and "no difference found on 3 inputs" in out


def test_help_documents_exit_codes_and_what_is_not_reported(capsys):
    assert main(["check", "--help"]) == 0
    out = capsys.readouterr().out
    for text in ("no difference found", "different", "undecided", "rejected", "64", "tc_index", "tc_classid"):
        assert text in out
