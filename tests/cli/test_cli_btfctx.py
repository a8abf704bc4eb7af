"""`bpfpatch analyze` and `patch --pass kernel` on tp_btf / iter sections: the context is the attach
target's arguments, read from the kernel's BTF by the section's name, as libbpf finds the target
(`bpfpatch.btf.ctxargs.section_ctx_layout`).  Without it the task pointers would be scalars and
both commands would stop at ``R2 invalid mem access 'scalar'``."""

from __future__ import annotations

import pytest
from conftest import PROGS, compile_bpf

from bpfpatch.btf.vmlinux import kernel_btf_available
from bpfpatch.cli import main

pytestmark = pytest.mark.skipif(not kernel_btf_available(), reason="no kernel BTF (/sys/kernel/btf/vmlinux)")


@pytest.mark.parametrize("section, loaded", [("tp_btf/sched_process_fork", "ptr_task_struct()"),
                                             ("iter/task", "ptr_or_null_task_struct(id=")])
def test_analyze_types_the_context_by_the_attach_target(objdir, capsys, section, loaded):
    obj = compile_bpf(PROGS / "btf" / "tracing.c", objdir)
    assert main(["analyze", str(obj), "--section", section]) == 0
    out = capsys.readouterr().out
    assert loaded in out
    assert "invalid mem access" not in out


def test_patch_kernel_pass_on_a_tp_btf_section(objdir, tmp_path, capsys):
    obj = compile_bpf(PROGS / "btf" / "tracing.c", objdir)
    out = tmp_path / "fork.bin"
    assert main(["patch", str(obj), "-o", str(out), "--pass", "kernel", "--section", "tp_btf/sched_process_fork",
                 "--linked"]) == 0
    assert out.stat().st_size > 0
