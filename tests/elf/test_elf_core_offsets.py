"""CO-RE field offsets applied for the analysis as libbpf applies them at load (`bpfpatch.btf.core`).

tests/progs/btf/core_offsets.c declares task_struct and mm_struct as another kernel laid them out; libbpf
rewrites the loads' offsets to the running kernel's before the verifier runs.  Our relocated copy must
hold the offsets libbpf wrote, and `analyze` must accept the program the kernel accepts (it read the old
offsets before: ``R1 invalid mem access 'scalar'``, as on ebpf_exporter's tp_btf programs).
"""

from __future__ import annotations

import pytest

from bpfpatch.btf.core import essential_name, relocated_offsets
from bpfpatch.btf.ext import CoreReloKind
from bpfpatch.btf.vmlinux import kernel_btf_available, kernel_types
from bpfpatch.cli import main
from bpfpatch.elf import read_object
from bpfpatch.isa import decode_slots, slot_rows
from bpfpatch.isa.opcodes import CALL
from conftest import PROGS, compile_bpf

pytestmark = pytest.mark.kernel

POISON = 0xBAD2310  # libbpf's imm for an instruction whose record it cannot resolve


@pytest.fixture(scope="module")
def old_layout(tmp_path_factory):
    if not kernel_btf_available():
        pytest.skip("no kernel BTF (/sys/kernel/btf/vmlinux) to relocate against")
    return compile_bpf(PROGS / "btf" / "core_offsets.c", tmp_path_factory.mktemp("core"))


def test_essential_name_drops_the_flavour():
    assert essential_name("task_struct___old") == "task_struct"
    assert essential_name("task_struct") == "task_struct"
    assert essential_name("___x") == "___x"


def test_relocated_offsets_are_the_ones_libbpf_writes(old_layout):
    from bpfpatch.kernel.libbpf import load_object

    obj = read_object(old_layout.read_bytes())
    prog = obj.linked_program("tp_btf/sched_switch")
    ours = slot_rows(relocated_offsets(prog, obj.btf, kernel_types()).slots)
    before = slot_rows(prog.slots)
    with load_object(old_layout) as loaded:
        lib = slot_rows(decode_slots(loaded.programs["old_layout"].insns()))
    kinds = {r.insn_off: r.kind for r in prog.core_relos}
    compared = changed = 0
    for i, kind in sorted(kinds.items()):
        if lib[i][0] == CALL and lib[i][4] == POISON:
            assert ours[i] == before[i]  # no_such_field: nothing to relocate to, left as clang wrote it
            continue
        assert ours[i] == lib[i], (i, CoreReloKind(kind).name)
        compared += 1
        changed += ours[i] != before[i]
    assert compared == 4 and changed >= 3  # mm, pid, the exists check (0 here), total_vm (in an anonymous struct)
    assert ours[6][4] == 0  # bpf_core_field_exists(no_such_field)


def test_analyze_reads_the_relocated_offsets(old_layout, capsys):
    assert main(["analyze", str(old_layout)]) == 0
    out = capsys.readouterr().out
    assert "ptr_mm_struct" in out  # next->mm read at the kernel's offset: a pointer, not the old offset's scalar
