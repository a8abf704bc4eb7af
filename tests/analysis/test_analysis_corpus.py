"""The analysis against the kernel on real programs: ours (clang-built), xdp-tools' objects, kernel selftests.

For every program the kernel loads: at each instruction the kernel's log_level 2
log prints, the register types agree with one of our states there (and the
printed text, ids and precision marks aside, at >= 95% of the steps: where our
pruning and the kernel's differ, a path one of us walked the other proved safe
earlier, and its states are not printed); every
32-bit definition the kernel zero-extends (BPF_F_TEST_RND_HI32 oracle) has
``zext_dst``.  Bounded: a fixed sample, deterministic.
"""

from __future__ import annotations

import glob
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import PROGS, compile_bpf

from analysis_kernel import RND_PROBE, F_TEST_RND_HI32, check_object, kernel_applies_rnd_hi32, rnd_hi32_defs

pytestmark = pytest.mark.kernel

XDP_TOOLS = Path("/usr/lib/x86_64-linux-gnu/bpf")
SELFTESTS = Path("/work/src/linux-source-6.12/tools/testing/selftests/bpf")
# Small enough to run in CI (the full xdpfilt_*_all objects process ~65k instructions each).
XDP_SAMPLE = ["xdpfilt_alw_eth.o", "xdpfilt_dny_tcp.o", "xsk_def_xdp_prog.o", "xsk_def_xdp_prog_5.3.o",
              "xdp-dispatcher.o"]
SELFTEST_SAMPLE = ["test_l4lb.c", "verifier_and.c", "verifier_bounds.c",
                   "verifier_direct_packet_access.c", "verifier_subreg.c", "verifier_movsx.c", "verifier_sdiv.c",
                   "verifier_bswap.c", "verifier_ldsx.c"]


def _assert_agrees(results, *, exact_ok: float = 0.95):
    assert results, "no program of the object loaded"
    for r in results:
        if r.kernel_error:
            continue  # refused by the kernel: compared by the refusal tests
        assert not r.our_error, f"{r.obj}:{r.name}: we refuse what the kernel accepts: {r.our_error}"
        c = r.cmp
        assert c is not None and c.steps > 0
        assert c.type_mismatches == [], f"{r.obj}:{r.name}: {c.type_mismatches[:3]}"
        assert c.exact_match >= exact_ok * c.steps, f"{r.obj}:{r.name}: {c.exact_mismatches[:3]}"
        assert r.zext_diff == [], f"{r.obj}:{r.name}: the kernel zero-extends {r.zext_diff} and we do not"


def test_the_kernels_zext_oracle():
    """BPF_F_TEST_RND_HI32 patches the probe's ``w1 = 5`` (its upper half unread) and nothing else: where
    the kernel ignores the flag, every zext_dst comparison with the kernel is skipped, said here."""
    import platform

    from bpfpatch.isa import insns_to_slots
    from bpfpatch.kernel import load_program
    from bpfpatch.progtype import ProgType

    if not kernel_applies_rnd_hi32():
        pytest.skip(f"this kernel ({platform.release()}) ignores BPF_F_TEST_RND_HI32 (or bpf() is refused): "
                    "the zext_dst comparisons with the kernel are skipped")
    raw = insns_to_slots(list(RND_PROBE)).tobytes()
    with load_program(raw, ProgType.SOCKET_FILTER, prog_flags=F_TEST_RND_HI32) as lp:
        assert rnd_hi32_defs(raw, lp.xlated()) == {0}


def test_our_corpus(objdir):
    obj = compile_bpf(PROGS / "analysis" / "corpus.c", objdir)
    results = check_object(str(obj))
    assert {r.prog_type for r in results} >= {"socket_filter", "sched_cls", "xdp", "cgroup_skb"}
    _assert_agrees(results)


@pytest.mark.parametrize("name", XDP_SAMPLE)
def test_xdp_tools(name):
    path = XDP_TOOLS / name
    if not path.exists():
        pytest.skip(f"{path} missing (xdp-tools not installed)")
    # the dispatcher reads its configuration from a frozen .rodata map: the kernel knows those
    # constants, we do not (one printed range differs), types still agree
    _assert_agrees(check_object(str(path)), exact_ok=0.7 if "dispatcher" in name else 0.95)


def _selftest_object(src: Path, out: Path) -> Path:
    vmlinux = out / "vmlinux.h"
    if not vmlinux.exists():
        res = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"],
                             capture_output=True, text=True)
        if res.returncode:
            pytest.skip(f"bpftool cannot dump vmlinux BTF: {res.stderr.strip()}")
        vmlinux.write_text(res.stdout)
    obj = out / (src.stem + ".o")
    cmd = ["clang-19", "-O2", "-g", "-target", "bpf", "-mcpu=v3", "-D__TARGET_ARCH_x86", f"-I{out}",
           f"-I{SELFTESTS}", f"-I{SELFTESTS / 'progs'}", "-idirafter", "/usr/include", "-idirafter",
           "/usr/include/x86_64-linux-gnu", "-c", str(src), "-o", str(obj)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        pytest.skip(f"{src.name} does not compile here: {res.stderr.strip()[:200]}")
    return obj


@pytest.mark.slow
@pytest.mark.parametrize("name", SELFTEST_SAMPLE)
def test_kernel_selftests(name, tmp_path_factory):
    if shutil.which("clang-19") is None or not SELFTESTS.exists():
        pytest.skip("clang-19 or the kernel selftests source is missing")
    out = tmp_path_factory.getbasetemp() / "selftests"
    out.mkdir(exist_ok=True)
    obj = _selftest_object(SELFTESTS / "progs" / name, out)
    results = [r for r in check_object(str(obj)) if not r.kernel_error]
    if not results:
        pytest.skip(f"{name}: no program the kernel accepts loads on its own")
    _assert_agrees(results, exact_ok=0.95)


def test_corpus_list_is_real():
    assert glob.glob(str(PROGS / "analysis" / "*.c"))
