"""Open-coded iterator loops converge as the running kernel's do: the same processed count, the same states.

tests/progs/kernel/iter_loops.c, against the kernel's own log (log_level 2, read here, not pinned). On
Linux 6.18 the kernel processes 543 / 74 / 110 instructions (overfetch / two_loops / nested); before the
iterator's state (active / drained, depth) was kept, the analysis forked at every next call and compared
references by number: 19,698 / 91 / 167, and it accepted next_after_destroy.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import PROGS, compile_bpf

from bpfpatch.btf.vmlinux import kernel_btf_available, kernel_types

pytestmark = pytest.mark.kernel

ACCEPTED = ("overfetch", "two_loops", "nested")
#: Program -> the kernel's reason for refusing it, as the running kernel gives it.
REFUSED = {"next_after_destroy": "expected an initialized iter_num as arg #0",
           "double_new": "expected uninitialized iter_num as arg #0"}


@pytest.fixture(scope="module")
def iter_loops(tmp_path_factory):
    if not kernel_btf_available() or kernel_types().func_id("bpf_iter_num_next") is None:
        pytest.skip("no kernel BTF naming bpf_iter_num_next")
    return compile_bpf(PROGS / "kernel" / "iter_loops.c", tmp_path_factory.mktemp("iter_loops"))


def _check_object(path: Path, programs: "list[str] | None"):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis"))
    from analysis_kernel import check_object

    return {r.name: r for r in check_object(str(path), programs=programs)}


def test_processed_counts_are_the_kernels(iter_loops):
    results = _check_object(iter_loops, list(ACCEPTED))
    assert sorted(results) == sorted(ACCEPTED)
    for name, r in results.items():
        if r.kernel_error:
            pytest.skip(f"the kernel refuses {name} here: {r.kernel_error}")
        assert not r.our_error, f"{name}: we refuse what the kernel accepts: {r.our_error}"
        assert r.processed == r.kernel_processed, f"{name}: processed {r.processed}, the kernel {r.kernel_processed}"
        # the states too: every step the kernel printed (the iterator's slot included) is one of ours
        assert r.cmp.exact_match == r.cmp.steps, f"{name}: {r.cmp.exact_mismatches[:2]}"


def _kernel_reason(path: Path, name: str) -> str | None:
    from bpfpatch.kernel import load_object
    from bpfpatch.kernel.libbpf import LibbpfError

    try:
        with load_object(str(path), programs=[name]):
            return None
    except LibbpfError as exc:
        log = (getattr(exc, "log", "") or str(exc)).strip().splitlines()
        return next((line for line in reversed(log) if line.startswith("expected")), log[-1] if log else str(exc))


def test_refused_as_the_kernel_refuses(iter_loops):
    from bpfpatch.analysis.verifier import AnalysisError
    from bpfpatch.elf import read_object
    from bpfpatch.kernel.analysis import analyze_object_program
    from bpfpatch.prove.corpus import elf_programs

    assert {name: _kernel_reason(iter_loops, name) for name in REFUSED} == REFUSED
    obj = read_object(iter_loops)
    ours = {}
    for label, program, ptype in elf_programs(iter_loops):
        name = label.split(":")[-1]
        if name in REFUSED:
            with pytest.raises(AnalysisError) as exc:
                analyze_object_program(program, obj, ptype)
            ours[name] = str(exc.value).split(": ", 1)[1]
    assert ours == REFUSED


#: Kernel selftests whose iterators' loops we walk as the kernel does, instruction for instruction: the numbers
#: iterator (num_overfetched_elem_cnt: 865 on 6.18, 11,758 before) and a kernel-struct one whose element is a
#: trusted pointer, never NULL (iter_task_vma_for_each: 21,037; 22,043 without the flag, 17,053 before).
SELFTESTS = ("iters_num", "iters_task_vma")


@pytest.mark.parametrize("name", SELFTESTS)
def test_selftest_iterators_processed_counts_are_the_kernels(name, tmp_path_factory):
    import shutil

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from objcorpus import SELFTESTS as SELFTEST_TREE
    from objcorpus import build_selftests

    if shutil.which("clang-19") is None or not SELFTEST_TREE.exists():
        pytest.skip("clang-19 or the kernel selftests source is missing")
    out = tmp_path_factory.getbasetemp() / "iter_selftests"
    out.mkdir(exist_ok=True)
    built = build_selftests(out, [name], vmlinux_dir=out / "inc")
    if not built:
        pytest.skip(f"{name}.c does not compile here")
    results = _check_object(built[0], None)
    accepted = [r for r in results.values() if not r.kernel_error]
    if not accepted:
        pytest.skip(f"the kernel loads none of {name}'s programs on their own here")
    for r in accepted:
        assert not r.our_error, f"{r.name}: we refuse what the kernel accepts: {r.our_error}"
        assert r.processed == r.kernel_processed, f"{r.name}: processed {r.processed}, the kernel {r.kernel_processed}"
