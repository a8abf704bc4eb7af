"""`--pass kernel` on what the verifier's own test programs do not reach, against this kernel's xlated output.

``tests/progs/kernel/loops_kfuncs.c`` (clang-built, loaded through libbpf):
bpf_loop inlining (optimize_bpf_loop: only where every path passes flags 0 and
one callback) and kfunc call fixups (fixup_kfunc_call: the casts become
``r0 = r1``, bpf_obj_new gets its type's size and struct meta, bpf_obj_drop
the meta).  Where the kernel's selftest objects are built (tests/objcorpus.py
--selftests /tmp/objects-corpus), a sample of them that exercises the same
rewrites and inner-map lookups too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import PROGS, compile_bpf

from bpfpatch.errors import BpfPatchError

from kernel_xlated_corpus import check_object

pytestmark = pytest.mark.kernel

#: Program -> how many slots longer the kernel made it (18 per inlined bpf_loop; 3 for bpf_obj_new's
#: size and meta, 2 for bpf_obj_drop's meta; the casts stay one instruction).
GROWTH = {"loop_inlined": 18, "loop_two_sites": 36, "loop_unknown_flags": 0, "loop_two_callbacks": 0,
          "kfunc_casts": 0, "kfunc_obj_new_drop": 5}


def test_bpf_loop_inlining_and_kfunc_fixups_match_the_kernel(objdir):
    from bpfpatch.isa import decode_slots
    from bpfpatch.kernel import load_object

    path = compile_bpf(PROGS / "kernel" / "loops_kfuncs.c", objdir)
    results = {r.prog: r for r in check_object(path, timeout=120)}
    assert set(results) == set(GROWTH), results
    assert {name: r.verdict for name, r in results.items()} == {name: "match" for name in GROWTH}
    with load_object(str(path)) as obj:  # the kernel did rewrite them, as much as said
        for name, prog in obj.programs.items():
            grown = len(decode_slots(prog.as_loaded().xlated())) - len(decode_slots(prog.insns()))
            assert grown == GROWTH[name], name


def test_a_kernel_functions_address_is_the_loaders_as_a_maps_is(objdir):
    # cilium/ebpf's kfunc.o: bpf_ksym_exists(kfunc) is an ld_imm64 of the kfunc's BTF id, which the kernel
    # turns into the function's address; the pass leaves it to the loader, as it leaves a map's address
    from bpfpatch.btf.vmlinux import kfunc_id

    try:
        kfunc_id("bpf_cpumask_create")
    except BpfPatchError:
        pytest.skip("this kernel has no bpf_cpumask_create kfunc")
    path = compile_bpf(PROGS / "kernel" / "ksym_address.c", objdir)
    assert [(r.prog, r.verdict) for r in check_object(path, timeout=120)] == [("kfunc_address", "match")]


#: Program -> slots the kernel removed: 3 where a linked delta decides a branch (the branch, hard-wired and
#: then a nop, and the dead ``r0 = 7; exit``); none where the link must not hold.
LINKED_SHRINK = {"add_negative": 3, "sub_constant": 3, "add_positive": 3, "alu32_delta": 3, "mixed_widths": 0,
                 "two_deltas": 0}


def test_linked_scalar_deltas_narrow_as_the_kernel_does(objdir):
    # tetragon's switch ranges (`r1 = r7; r1 += -10; if r1 < 2`): the running kernel (6.18) narrows r7 through
    # r1's delta, negative, BPF_SUB and ALU32 ones too, and removes the code the narrowed r7 cannot reach;
    # without the deltas our dead-code removal kept it (a forward jump 3 slots longer)
    from bpfpatch.isa import decode_slots
    from bpfpatch.kernel import load_object

    path = compile_bpf(PROGS / "kernel" / "linked_deltas.c", objdir)
    results = {r.prog: r.verdict for r in check_object(path, timeout=120)}
    assert results == {name: "match" for name in LINKED_SHRINK}
    with load_object(str(path)) as obj:
        shrunk = {name: len(decode_slots(prog.insns())) - len(decode_slots(prog.as_loaded().xlated()))
                  for name, prog in obj.programs.items()}
    assert shrunk == LINKED_SHRINK


CORPUS = Path("/tmp/objects-corpus")
#: Selftest objects whose programs now match, each for a rewrite: bpf_loop inlining
#: (pyperf600_bpf_loop), inner-map lookups (verifier_map_in_map, inner_array_lookup), the kern-ctx cast
#: (cgroup_ancestor), obj_new / obj_drop / refcount_acquire / rbtree_add (local_kptr_stash).
SAMPLE = ["pyperf600_bpf_loop.o", "verifier_map_in_map.o", "inner_array_lookup.o", "cgroup_ancestor.o",
          "local_kptr_stash.o"]


@pytest.mark.slow
@pytest.mark.parametrize("name", SAMPLE)
def test_selftest_objects_match_the_kernel(name):
    path = CORPUS / name
    if not path.exists():
        pytest.skip(f"{path} missing (tests/objcorpus.py --selftests {CORPUS} builds the selftest corpus)")
    results = [r for r in check_object(path, timeout=120) if r.verdict != "kernel refused"]
    assert results
    matched = [r.prog for r in results if r.verdict == "match"]
    assert len(matched) >= max(1, len(results) - 1), [(r.prog, r.verdict, r.first_diff) for r in results]


def test_a_writable_dynptr_slice_gets_the_unclone_prologue(objdir):
    # tc: bpf_dynptr_slice_rdwr is a packet write for seen_direct_write (check_kfunc_call ->
    # may_access_direct_pkt_data), so the kernel puts bpf_unclone_prologue first; a read-only slice does not
    # (both failed or matched for the wrong reason before: the pass only counted direct packet stores)
    from bpfpatch.isa import decode_slots
    from bpfpatch.kernel import load_object

    path = compile_bpf(PROGS / "kernel" / "dynptr_write.c", objdir)
    assert {r.prog: r.verdict for r in check_object(path, timeout=120)} == {"slice_write": "match", "slice_read": "match"}
    with load_object(str(path)) as obj:
        grown = {name: len(decode_slots(prog.as_loaded().xlated())) - len(decode_slots(prog.insns()))
                 for name, prog in obj.programs.items()}
    assert grown["slice_write"] > grown["slice_read"], grown  # the prologue


def test_a_kptr_taken_out_by_xchg_is_a_reference(objdir):
    # bpf_kptr_xchg returns the field's old pointer as an acquired reference (is_acquire_function), so it can
    # be stashed again (a released argument) and released; the analysis refused the second xchg
    # ('R2 must be referenced when passed to release function'; selftests' task_kfunc_success too).
    # clang-19: the kernel reads the kptr tag after the pointer, where clang 14 does not put it.
    path = compile_bpf(PROGS / "kernel" / "kptr_swap.c", objdir, clang="clang-19", extra=("-D__TARGET_ARCH_x86",))
    assert [(r.prog, r.verdict) for r in check_object(path, timeout=120)] == [("swap_tasks", "match")]
