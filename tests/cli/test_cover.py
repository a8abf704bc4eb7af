"""`bpfpatch cover`: counts are right, behaviour is unchanged, the HTML shows lines and counts."""

from __future__ import annotations

import glob
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import PROGS, compile_bpf

from bpfpatch.cli import main
from bpfpatch.cover.instrument import COUNTERS_SECTION, instrument_object, read_cover_map

SRC = PROGS / "cover" / "branchy.c"
XDP_TOOLS = sorted(glob.glob("/usr/lib/x86_64-linux-gnu/bpf/xdp*.o"))
pytestmark = pytest.mark.kernel


def _marks() -> dict[str, int]:
    return {m.group(1): n for n, line in enumerate(SRC.read_text().splitlines(), 1)
            for m in [re.search(r"MARK (\w+)", line)] if m}


def _crafted(tmp_path: Path) -> tuple[Path, int, int, int]:
    """10 packets: 3 start with 0x42 (dropped), 4 have an odd second byte, 3 an even one; none 0xff."""
    pk = [bytes([0x42, 0]) + bytes(60)] * 3 + [bytes([0, 2 * i + 1]) + bytes(60) for i in range(4)] \
        + [bytes([0, 2 * i]) + bytes(60) for i in range(3)]
    f = tmp_path / "packets.txt"
    f.write_text("# crafted\n" + "\n".join(p.hex() for p in pk) + "\n")
    return f, len(pk), 3, 4


def _tracefile(path: Path) -> dict:
    da, fnda, brda = {}, {}, {}
    for line in path.read_text().splitlines():
        if line.startswith("DA:"):
            ln, n = line[3:].split(",")[:2]
            da[int(ln)] = int(n)
        elif line.startswith("FNDA:"):
            n, name = line[5:].split(",")
            fnda[name] = int(n)
        elif line.startswith("BRDA:"):
            ln, blk, br, n = line[5:].split(",")
            brda.setdefault(int(ln), []).append(int(n))
    return {"DA": da, "FNDA": fnda, "BRDA": brda}


@pytest.fixture(scope="module")
def covered(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cover")
    obj = compile_bpf(SRC, tmp)
    packets, n, k_drop, k_odd = _crafted(tmp)
    out = tmp / "report"
    rc = main(["cover", str(obj), "-o", str(out), "--inputs-from", str(packets), "--edges"])
    assert rc == 0
    return obj, out, n, k_drop, k_odd


def test_counts_are_right(covered):
    _obj, out, n, k_drop, k_odd = covered
    t = _tracefile(out / "coverage.info")
    marks = _marks()
    assert t["FNDA"]["cover_me"] == n                  # the entry block runs once per run
    assert t["FNDA"]["classify"] == n - k_drop         # called by every packet not dropped
    assert t["DA"][marks["drop"]] == k_drop            # a branch k of n packets take shows k
    assert t["DA"][marks["odd"]] == k_odd
    assert t["DA"][marks["never"]] == 0                # a line never reached shows 0
    # the jump on p[0] == 0x42: taken / not taken by 3 and 7 packets (one line above the drop)
    assert sorted(t["BRDA"][marks["drop"] - 1]) == [k_drop, n - k_drop]


def test_html_report_in_headless_chromium(covered):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not installed")
    _obj, out, n, k_drop, k_odd = covered
    assert (out / "index.html").is_file()
    page = next(out.rglob("branchy.c.gcov.html"))
    dom = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    marks = _marks()
    rows = {int(m.group(1)): (m.group(2), int(m.group(3)), m.group(4)) for m in re.finditer(
        r'<span class="lineNum">\s*(\d+) </span>.*?<span class="(lineCov|lineNoCov)">\s*(\d+) :(.*?)</span>', dom)}
    assert rows[marks["drop"]][1:] == (k_drop, rows[marks["drop"]][2]) and "MARK drop" in rows[marks["drop"]][2]
    assert rows[marks["odd"]][1] == k_odd and "odd += 1" in rows[marks["odd"]][2]
    assert rows[marks["never"]][0] == "lineNoCov" and rows[marks["never"]][1] == 0
    index = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", (out / "index.html").as_uri()],
                           capture_output=True, text=True, timeout=120).stdout
    assert "branchy.c" in index or "cover" in index


def test_instrument_then_report_from_a_bpftool_dump(covered, tmp_path):
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed")
    obj, _out, _n, _k, _o = covered
    inst = tmp_path / "inst.o"
    assert main(["cover", "instrument", str(obj), "-o", str(inst)]) == 0
    pin = Path("/sys/fs/bpf") / f"bpfpatch-cover-{tmp_path.name}"
    if not Path("/sys/fs/bpf").is_dir():
        pytest.skip("no /sys/fs/bpf")
    if subprocess.run(["mountpoint", "-q", "/sys/fs/bpf"]).returncode and \
            subprocess.run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"], capture_output=True).returncode:
        pytest.skip("bpffs is not mounted at /sys/fs/bpf and cannot be mounted here")
    try:
        subprocess.run(["bpftool", "prog", "loadall", str(inst), str(pin), "pinmaps", str(pin / "maps")], check=True,
                       capture_output=True)
        pkt = tmp_path / "pkt.bin"
        pkt.write_bytes(bytes([0x42, 0]) + bytes(60))
        subprocess.run(["bpftool", "prog", "run", "pinned", str(pin / "cover_me"), "data_in", str(pkt), "repeat", "5"],
                       check=True, capture_output=True)
        maps = [p for p in (pin / "maps").iterdir() if "bpfcover" in p.name]
        dump = subprocess.run(["bpftool", "map", "dump", "pinned", str(maps[0]), "-j"], check=True,
                              capture_output=True, text=True).stdout
    finally:
        subprocess.run(["rm", "-rf", str(pin)])
    (tmp_path / "dump.json").write_text(dump)
    out = tmp_path / "rep"
    assert main(["cover", "report", str(inst), "--counters", str(tmp_path / "dump.json"), "-o", str(out)]) == 0
    t = _tracefile(out / "coverage.info")
    assert t["FNDA"]["cover_me"] == 5 and t["DA"][_marks()["drop"]] == 5 and t["DA"][_marks()["odd"]] == 0
    assert json.loads(dump)  # the dump was real bpftool output


def test_bad_input_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "x.o"
    bad.write_bytes(b"not an object")
    out = tmp_path / "out.o"
    assert main(["cover", "instrument", str(bad), "-o", str(out)]) == 1
    assert not out.exists() and "error" in capsys.readouterr().err


def test_the_map_travels_in_the_object(covered, tmp_path):
    obj = covered[0]
    data, cmap = instrument_object(obj)
    assert read_cover_map(data).counters == cmap.counters
    with pytest.raises(Exception, match="already instrumented"):
        p = tmp_path / "i.o"
        p.write_bytes(data)
        instrument_object(p)
    assert COUNTERS_SECTION == ".data.__bpfcover"


@pytest.mark.parametrize("path", XDP_TOOLS[::3] or ["none"])
def test_third_party_xdp_objects_load_and_behave_the_same(path, tmp_path):
    """xdp-tools objects (not written here): the instrumented object loads wherever the original does."""
    if path == "none":
        pytest.skip("xdp-tools objects are not installed")
    from bpfpatch.cover.run import packet_inputs, run_coverage
    from bpfpatch.errors import KernelError
    from bpfpatch.kernel.libbpf import load_object

    try:
        load_object(path).close()
    except KernelError as exc:
        pytest.skip(f"the original does not load here either: {str(exc)[:120]}")
    data, cmap = instrument_object(path, edges=True)
    res = run_coverage(path, data, cmap, packet_inputs(48, 1))
    assert res.differences == [] and sum(res.runs.values()) >= 48
    for prog, runs in res.runs.items():  # each program's entry block ran once per run
        entry = min((c for c in cmap.counters if c.kind == "block" and c.function == prog), key=lambda c: c.slot)
        assert res.counters[entry.index] == runs, prog


def test_default_inputs_are_the_checks_search_and_reach_more_blocks(tmp_path):
    """Without --inputs-from, cover runs the inputs `check` finds (its coverage-guided search):
    on xdp-tools' filter they reach more blocks than the same number of random well-formed frames."""
    from bpfpatch.cover.run import packet_inputs, run_coverage, searched_inputs

    path = "/usr/lib/x86_64-linux-gnu/bpf/xdpfilt_alw_tcp.o"
    if not Path(path).exists():
        pytest.skip("xdp-tools objects are not installed (Debian xdp-tools)")
    data, cmap = instrument_object(path)
    blocks = [c for c in cmap.counters if c.kind == "block"]

    def executed(inputs) -> int:
        res = run_coverage(path, data, cmap, inputs)
        assert res.differences == []
        return sum(1 for c in blocks if res.counters[c.index])

    searched = searched_inputs(path, 400)
    assert len(searched) == 400 and all(ctx is not None for _label, _data, ctx in searched)
    assert executed(searched) > executed(packet_inputs(400))


SELFTESTS = Path("/work/src/linux-source-6.12/tools/testing/selftests/bpf")


@pytest.fixture(scope="module")
def selftest_objects(tmp_path_factory):
    """tc and XDP programs of the kernel's own selftests (not written here), compiled with clang."""
    if not (SELFTESTS / "progs").is_dir() or shutil.which("clang") is None or shutil.which("bpftool") is None:
        pytest.skip("the kernel source (linux-source-6.12), clang or bpftool is missing")
    tmp = tmp_path_factory.mktemp("selftests")
    (tmp / "inc" / "gnu").mkdir(parents=True)
    (tmp / "inc" / "gnu" / "stubs-32.h").write_text("")  # -target bpf makes glibc ask for the 32-bit stubs
    with open(tmp / "inc" / "vmlinux.h", "w") as f:
        subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"], stdout=f, check=True)
    out = {}
    for name in ("test_pkt_access", "test_l4lb_noinline", "test_xdp_noinline"):
        out[name] = compile_bpf(SELFTESTS / "progs" / f"{name}.c", tmp,
                                extra=(f"-I{tmp / 'inc'}", f"-I{SELFTESTS}", f"-I{SELFTESTS / 'progs'}"))
    return out


@pytest.mark.parametrize("name", ["test_pkt_access", "test_l4lb_noinline", "test_xdp_noinline"])
def test_kernel_selftest_tc_and_xdp_objects(selftest_objects, name, tmp_path):
    from bpfpatch.cover.report import line_coverage
    from bpfpatch.cover.run import packet_inputs, run_coverage

    path = selftest_objects[name]
    data, cmap = instrument_object(path, edges=True)
    res = run_coverage(path, data, cmap, packet_inputs(64, 2))
    assert res.differences == [] and res.runs
    for prog, runs in res.runs.items():
        entry = min((c for c in cmap.counters if c.kind == "block" and c.function == prog), key=lambda c: c.slot)
        assert res.counters[entry.index] == runs, prog
    files = line_coverage(cmap, res.counters)
    assert sum(f.lines_hit for f in files.values()) > 0
    if name != "test_pkt_access":  # the load balancers' packets are too specific for random ones
        assert any(0 in f.lines.values() for f in files.values())


def test_section_and_prog_type_options(covered, tmp_path):
    obj = covered[0]
    out = tmp_path / "r"
    pk = tmp_path / "p.txt"
    pk.write_text((bytes([0x42, 0]) + bytes(60)).hex() + "\n")
    assert main(["cover", str(obj), "-o", str(out), "--section", "xdp", "--prog-type", "xdp", "--inputs-from", str(pk)]) == 0
    assert _tracefile(out / "coverage.info")["FNDA"]["cover_me"] == 1
    assert main(["cover", str(obj), "-o", str(tmp_path / "s"), "--section", "nosuch", "--inputs", "2"]) == 1


def test_sources_relative_paths_and_objects_without_source_text(tmp_path):
    """A relative BTF path resolves under --source-dir; without text in BTF the lines say so."""
    if shutil.which("clang") is None:
        pytest.skip("clang is not installed")
    from conftest import multiarch_include

    obj = tmp_path / "rel.o"
    subprocess.run(["clang", "-O2", "-g", "-target", "bpf", "-mcpu=v3", *multiarch_include(), "-c", "branchy.c",
                    f"-fdebug-prefix-map={SRC.parent}=.", "-o", str(obj)], cwd=SRC.parent, check=True)
    pk = tmp_path / "p.txt"
    pk.write_text((bytes([0x42, 0]) + bytes(60)).hex() + "\n")
    out = tmp_path / "with"
    assert main(["cover", str(obj), "-o", str(out), "--inputs-from", str(pk), "--source-dir", str(SRC.parent)]) == 0
    assert f"SF:{SRC.resolve()}" in (out / "coverage.info").read_text()
    out2 = tmp_path / "without"
    assert main(["cover", str(obj), "-o", str(out2), "--inputs-from", str(pk)]) == 0
    assert f"SF:{SRC.resolve()}" not in (out2 / "coverage.info").read_text()   # a relative path, not found
    rebuilt = (out2 / "src" / "branchy.c").read_text().splitlines()
    assert "MARK drop" in rebuilt[_marks()["drop"] - 1]            # the line text BTF carries
    stripped = Path("/usr/lib/x86_64-linux-gnu/bpf/xsk_def_xdp_prog.o")
    if stripped.is_file():
        out3 = tmp_path / "xsk"
        assert main(["cover", str(stripped), "-o", str(out3), "--inputs", "8"]) == 0
        text = "".join(p.read_text() for p in (out3 / "src").rglob("*.c"))
        assert "no source text in the object's BTF" in text


def test_counters_cost_one_or_two_slots_with_unused_registers(covered):
    """A subprogram that leaves registers alone keeps &counters[base] (and 1) in them: 1-2 slots a block."""
    from bpfpatch.cover.run import packet_inputs, run_coverage

    obj = covered[0]
    _, full = instrument_object(obj, base_registers=False)
    data, cheap = instrument_object(obj)
    assert full.added_insns == 4 * len(full.counters) + 2 * full.spills
    assert cheap.added_insns < full.added_insns
    res = run_coverage(obj, data, cheap, packet_inputs(16, 3))
    assert res.differences == [] and res.runs == {"cover_me": 16}
    ip = Path("/usr/lib/x86_64-linux-gnu/bpf/xdpfilt_alw_ip.o")
    if ip.is_file():   # r6-r9: one is never named there -> 2 slots a block, 2 for the base
        _, m = instrument_object(ip)
        assert m.added_insns == 2 + 2 * len(m.counters)


def test_counters_cost_three_slots_with_the_base_in_a_stack_slot(tmp_path):
    """xdpfilt_alw_all names every register: &counters[base] goes below its frame, a counter is 3 slots
    (``rA = *(u64 *)(r10 - s); rB = 1; lock add``) instead of 4, and it still behaves the same."""
    from bpfpatch.cover.run import packet_inputs, run_coverage

    path = Path("/usr/lib/x86_64-linux-gnu/bpf/xdpfilt_alw_all.o")
    if not path.is_file():
        pytest.skip("xdp-tools objects are not installed")
    _, full = instrument_object(path, base_registers=False)
    data, cheap = instrument_object(path)
    assert full.added_insns == 4 * len(full.counters) + 2 * full.spills   # 500 on 124 blocks
    assert cheap.added_insns == 3 + 3 * len(cheap.counters) + 3 * cheap.spills  # 381: setup 3, spilled ones 6
    res = run_coverage(path, data, cheap, packet_inputs(64, 5))
    assert res.differences == [] and sum(res.runs.values()) == 64
