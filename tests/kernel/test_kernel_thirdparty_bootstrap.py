"""libbpf-bootstrap's example programs (not written by us; vendored unmodified in
tests/progs/thirdparty/libbpf-bootstrap), built with Debian's clang and libbpf-dev headers against this
kernel's vmlinux.h, against the kernel and libbpf:

* ``analyze`` accepts every program the kernel loads (the usdt programs' hidden ``bpf_usdt_arg``, fexit's
  second ``.rodata`` string: both were refused);
* our linker lays out every loaded program as libbpf relocated it;
* ``--pass kernel`` reproduces the kernel's xlated program;
* every pass set's rewrite, written back, loads exactly the programs the original loads;
* ``check`` finds no difference between the tc and socket-filter programs and their rewrite.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bpfpatch.cli import main
from bpfpatch.elf import read_object
from bpfpatch.elf.rewrite import rewrite_object
from conftest import PROGS, compile_bpf
from kernel_xlated_corpus import check_object, loadable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "elf"))
from objcorpus import vmlinux_header  # noqa: E402
from test_elf_link_libbpf import agree_loaded  # noqa: E402

pytestmark = pytest.mark.kernel

SRC = PROGS / "thirdparty" / "libbpf-bootstrap"
NAMES = ("tc", "sockfilter", "fentry", "usdt", "minimal")
PASS_SETS = (("dce",), ("div-guard",), ("zext",), ("blind",), ("dce", "div-guard", "zext", "blind"))


@pytest.fixture(scope="module")
def objects(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("bootstrap")
    inc = out / "inc"
    try:
        vmlinux_header(inc)
    except (OSError, Exception) as exc:  # no bpftool or no kernel BTF: nothing to build against
        pytest.skip(f"no vmlinux.h for this kernel: {exc}")
    return {n: compile_bpf(SRC / f"{n}.bpf.c", out, extra=(f"-I{inc}", f"-I{SRC}", "-D__TARGET_ARCH_x86"))
            for n in NAMES}


def _loaded(path: Path) -> dict[str, str]:
    """Program name -> section, of the programs the kernel takes from the object (through libbpf)."""
    names = {}
    for obj in loadable(path):
        with obj:
            names |= {n: p.section for n, p in obj.programs.items() if p.loaded}
    return names


def test_the_kernel_loads_what_it_should(objects):
    loaded = {n: sorted(_loaded(p)) for n, p in objects.items()}
    # fentry/fexit: this kernel refuses trampolines (EPERM); everything else loads
    assert loaded == {"tc": ["tc_ingress"], "sockfilter": ["socket_handler"], "fentry": [],
                      "usdt": ["usdt_auto_attach", "usdt_manual_attach"], "minimal": ["handle_tp"]}


def test_analyze_accepts_what_the_kernel_loads(objects, capsys):
    for name, path in objects.items():
        obj = read_object(path.read_bytes())
        sections = {s for s in obj.programs if s != ".text"}
        for sec in sections:
            assert main(["analyze", str(path), "--section", sec]) in (0, None), (name, sec, capsys.readouterr().err)
    capsys.readouterr()


def test_the_linker_lays_out_programs_as_libbpf_does(objects):
    compared = 0
    for path in objects.values():
        obj = read_object(path.read_bytes())
        for loaded in loadable(path):
            with loaded:
                n, differ = agree_loaded(obj, loaded)
                assert differ == [], (path.name, differ)
                compared += n
    assert compared == 5


def test_the_kernel_pass_reproduces_xlated(objects):
    outcomes = [r for p in objects.values() for r in check_object(p, timeout=120) if r.verdict != "kernel refused"]
    assert sorted(r.prog for r in outcomes) == ["handle_tp", "socket_handler", "tc_ingress", "usdt_auto_attach",
                                                "usdt_manual_attach"]
    assert [f"{r.prog}: {r.verdict}" for r in outcomes if r.verdict != "match"] == []


def test_every_rewrite_loads_the_programs_the_original_loads(objects, tmp_path):
    for name, path in objects.items():
        base = _loaded(path)
        for ps in PASS_SETS:
            out = tmp_path / f"{name}-{'+'.join(ps)}.o"
            out.write_bytes(rewrite_object(path.read_bytes(), None, list(ps)))
            assert _loaded(out) == base, (name, ps)


def test_check_finds_no_difference_in_the_rewrites(objects, tmp_path, capsys):
    for name in ("tc", "sockfilter"):
        out = tmp_path / f"{name}-all.o"
        out.write_bytes(rewrite_object(objects[name].read_bytes(), None, list(PASS_SETS[-1])))
        capsys.readouterr()
        rc = main(["check", str(objects[name]), str(out), "--inputs", "300", "--json"])
        rec = json.loads(capsys.readouterr().out)
        assert (rc, rec["verdict"]) == (0, "no difference found"), rec
