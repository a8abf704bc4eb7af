"""bpf_iter_num_next's result has the kernel's type: read-only memory of the pointee's size, maybe NULL,
holding the iterator's reference (check_kfunc_call: PTR_TO_MEM | MEM_RDONLY | PTR_MAYBE_NULL, mem_size
from BTF; process_iter_arg's ref_obj_id).

tests/progs/kernel/iter_num.c: a loop summing the elements (the kernel loads it, so must we, with the
kernel's register types at every step), a store through an element and a read after the iterator's
destroy (the kernel refuses both, with the reason we give: before, the analysis accepted both).
The kernel pass without kernel types (the prover's corpus harness gave none for raw tracepoints) typed
the call's result as an unknown scalar and refused the load through it: ``R0 invalid mem access 'scalar'``.
"""

from __future__ import annotations

import pytest
from conftest import PROGS, compile_bpf

from bpfpatch.btf.vmlinux import kernel_btf_available, kernel_types

pytestmark = pytest.mark.kernel

#: Program -> the kernel's verdict (the last line naming the reason), as the running kernel gives it.
KERNEL = {"sum_elements": None, "write_element": "R0 cannot write into rdonly_mem",
          "read_after_destroy": "R7 invalid mem access 'scalar'"}


@pytest.fixture(scope="module")
def iter_num(tmp_path_factory):
    if not kernel_btf_available() or kernel_types().func_id("bpf_iter_num_next") is None:
        pytest.skip("no kernel BTF naming bpf_iter_num_next")
    return compile_bpf(PROGS / "kernel" / "iter_num.c", tmp_path_factory.mktemp("iters"))


def _kernel_verdict(path, name: str) -> str | None:
    from bpfpatch.kernel import load_object
    from bpfpatch.kernel.libbpf import LibbpfError

    try:
        with load_object(str(path), programs=[name]):
            return None
    except LibbpfError as exc:
        log = (getattr(exc, "log", "") or str(exc)).strip().splitlines()
        return next(line for line in reversed(log) if line.startswith("R"))


def test_the_kernel_refuses_and_loads_what_we_do(iter_num):
    from bpfpatch.analysis.verifier import AnalysisError
    from bpfpatch.kernel.analysis import analyze_object_program
    from bpfpatch.prove.corpus import elf_programs

    assert {name: _kernel_verdict(iter_num, name) for name in KERNEL} == KERNEL
    ours = {}
    for label, program, ptype in elf_programs(iter_num):
        name = label.split(":")[-1]
        try:
            analyze_object_program(program, None, ptype)
            ours[name] = None
        except AnalysisError as exc:
            ours[name] = str(exc).split(": ", 1)[1]
    assert ours == KERNEL


def test_the_elements_type_is_the_kernels_at_every_step(iter_num):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis"))
    from analysis_kernel import check_object

    (r,) = check_object(str(iter_num), programs=["sum_elements"])
    assert not r.our_error and not r.kernel_error
    assert r.types_agree, r.cmp.type_mismatches[:2]
    elements = [k for _, k, _ in r.cmp.exact_mismatches if "rdonly_mem" in k]
    assert not elements, elements  # R0=rdonly_mem(id=..,ref_obj_id=..,sz=4), as the kernel prints it


def test_the_kernel_pass_types_the_element_without_kernel_types_given(iter_num):
    # the prover's corpus harness: pass options for a raw tracepoint, with the kernel's kfunc types now
    from bpfpatch.passes import PassContext, run_passes
    from bpfpatch.prove.corpus import elf_programs, pass_options

    (prog,) = [(p, t) for label, p, t in elf_programs(iter_num) if label.endswith(":sum_elements")]
    out = run_passes(prog[0], ["kernel"], PassContext(prog_type=prog[1], options=pass_options(*prog)))
    assert len(out.slots) >= len(prog[0].slots) - 2  # analyzed and rewritten, not refused
