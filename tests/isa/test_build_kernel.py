"""Builders against the running kernel: helper ids from its BTF, kfuncs by name, loaded programs."""

from __future__ import annotations

import pytest

from bpfpatch import Program
from bpfpatch.btf import vmlinux
from bpfpatch.isa import build as b
from bpfpatch.isa.helper_ids import HELPER_IDS

pytestmark = pytest.mark.skipif(not vmlinux.kernel_btf_available(), reason="no /sys/kernel/btf/vmlinux")


def test_the_uapi_table_agrees_with_the_running_kernel():
    kernel = vmlinux.helper_ids()
    assert kernel["map_lookup_elem"] == 1
    # every uapi name (6.12 headers) has the same id in the running kernel's enum bpf_func_id
    assert {n: i for n, i in HELPER_IDS.items() if n != "unspec" and kernel.get(n) != i} == {}
    assert vmlinux.call_helper("bpf_ktime_get_ns") == b.call_helper("ktime_get_ns")


def test_unknown_names_are_refused():
    with pytest.raises(b.BuildError, match="no function"):
        vmlinux.kfunc_id("no_such_kfunc_anywhere")
    with pytest.raises(b.BuildError, match="no helper"):
        vmlinux.call_helper("no_such_helper")


@pytest.mark.kernel
@pytest.mark.parametrize("prog_type", ["socket_filter", "xdp", "sched_cls"])
def test_kfunc_calls_by_name_load_and_run(prog_type):
    from bpfpatch.kernel import load_program

    lock, unlock = vmlinux.call_kfunc("bpf_rcu_read_lock"), vmlinux.call_kfunc("bpf_rcu_read_unlock")
    assert lock.src == 2 and lock.imm == vmlinux.kfunc_id("bpf_rcu_read_lock") > 0
    prog = Program.from_insns([lock, unlock, b.mov64_imm(0, 7), b.exit_insn()])
    with load_program(prog, prog_type) as p:
        assert p.test_run(bytes(64)).retval == 7
