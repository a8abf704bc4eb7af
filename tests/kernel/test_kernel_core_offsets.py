"""`patch --pass kernel` and `check --prove` read the CO-RE offsets libbpf writes, as `analyze` does.

tests/progs/btf/core_offsets.c declares task_struct and mm_struct as another kernel laid them out (an
object built against its own vmlinux.h); libbpf rewrites the loads' offsets before the kernel sees
them.  All three commands go through `bpfpatch.kernel.analysis.co_re_applied`.  Before: the kernel pass
refused the program (``R1 invalid mem access 'scalar'``: ``next->mm`` read at the old offset), and the
prover found a counterexample between the object and the very instructions libbpf loads from it.
"""

from __future__ import annotations

import pytest
from conftest import PROGS, compile_bpf

from bpfpatch.btf.vmlinux import kernel_btf_available
from bpfpatch.cli import main
from bpfpatch.isa import decode_slots, slot_rows

from kernel_xlated_corpus import _mask_kernel_addresses, comparable

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def old_layout(tmp_path_factory):
    """The object, and the instructions libbpf loads from it and the kernel's xlated form of them."""
    from bpfpatch.kernel import load_object

    if not kernel_btf_available():
        pytest.skip("no kernel BTF (/sys/kernel/btf/vmlinux) to relocate against")
    out = tmp_path_factory.mktemp("core")
    path = compile_bpf(PROGS / "btf" / "core_offsets.c", out)
    with load_object(str(path)) as obj:
        prog = obj.programs["old_layout"]
        (out / "libbpf.bin").write_bytes(prog.insns())
        xlated = prog.as_loaded().xlated()
    return path, out / "libbpf.bin", xlated


def test_kernel_pass_on_the_object_equals_the_kernels_xlated(old_layout, tmp_path):
    path, _, xlated = old_layout
    out = tmp_path / "kernel.bin"
    assert main(["patch", str(path), "-o", str(out), "--pass", "kernel", "--section", "tp_btf/sched_switch"]) == 0
    ours = slot_rows(decode_slots(out.read_bytes()))
    theirs = slot_rows(decode_slots(xlated))
    assert comparable(ours, xlated=False) == comparable(_mask_kernel_addresses(ours, theirs), xlated=True)
    assert ours[1][3] != 16  # next->mm at the running kernel's offset, not the old layout's (16: after pad and pid)


def test_prove_sees_the_offsets_libbpf_loads(old_layout, capsys):
    path, loaded, _ = old_layout
    code = main(["check", str(path), str(loaded), "--prove", "--section", "tp_btf/sched_switch"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "proved" in out
