"""What real programs use, checked against the kernel: each case is a program the kernel accepts.

Every case is analysed offline (it must not be refused, and the facts named in
the case must hold) and, where bpf() works, loaded with log_level 2: the
register types at every step the kernel prints agree with ours.  The cases
come from the selftest corpus (tests/analysis/analysis_sweep.py), cut down to
the instructions that showed each difference.
"""

from __future__ import annotations

import pytest

from bpfpatch.analysis.facts import MapRef, RegType
from bpfpatch.analysis.verifier import AnalysisRejected, analyze, return_range
from bpfpatch.analysis.vlog import compare, parse_log
from bpfpatch.asm import assemble
from bpfpatch.progtype import ProgType
from bpfpatch.program import Program

ARRAY = 2


def prog(text: str) -> Program:
    return Program.from_insns(assemble(text))


def kernel_agrees(text: str, ptype: str, *, maps=(), attach_type: int | None = None, **kw):
    """Analyse `text` (maps: MapSpecs created for the run, named in the text as {0}, {1}...) and,
    as root, compare with the kernel's log_level 2 states; returns our Analysis."""
    from contextlib import ExitStack

    from bpfpatch.errors import KernelError
    from bpfpatch.kernel import create_map, load_program

    with ExitStack() as stack:
        try:
            made = [stack.enter_context(create_map(spec)) for spec in maps]
        except KernelError as exc:
            pytest.skip(f"bpf() refused here: {exc}")
        refs = {m.fd: MapRef(i, spec.name, m.fd, int(spec.map_type), spec.key_size, spec.value_size,
                             spec.max_entries) for i, (m, spec) in enumerate(zip(made, maps))}
        p = prog(text.format(*[m.fd for m in made]))
        a = analyze(p, ptype, maps=refs, attach_type=attach_type, **kw)
        try:
            with load_program(p, ptype, log_level=2, expected_attach_type=attach_type or 0) as lp:
                log = parse_log(lp.verifier_log)
        except KernelError as exc:
            if "Operation not permitted" in str(exc) or "EPERM" in str(exc):
                pytest.skip(f"bpf() refused here: {exc}")
            raise
        cmp = compare(a.aux, log)
        assert cmp.steps > 0
        assert cmp.type_mismatches == [], cmp.type_mismatches[:3]
    return a


# A non-fetching atomic reads memory but defines no register: the old code wrote the value it
# "loaded" into regs[-1], the frame pointer (connect_ping.o: R10 became a scalar, bpf_bind refused).
ATOMIC_ADD_MAP_VALUE = """
r2 = 1
r3 = map[fd:{0}][0]+0
lock *(u32 *)(r3 + 0) += r2
r2 = r10
r2 += -8
r3 = 0
*(u64 *)(r2 + 0) = r3
r0 = *(u64 *)(r10 - 8)
exit
"""


@pytest.mark.kernel
def test_nonfetch_atomic_leaves_the_frame_pointer():
    from bpfpatch.kernel import MapSpec, MapType

    a = kernel_agrees(ATOMIC_ADD_MAP_VALUE, "socket_filter", maps=[MapSpec("cnt", MapType.ARRAY, 4, 8, 1)])
    assert a.aux[7].ptr_type is RegType.PTR_TO_STACK  # *(u64 *)(r2 + 0) = r3 through r2 = r10 - 8


def test_nonfetch_atomic_offline():
    ref = MapRef(0, "cnt", 7, ARRAY, 4, 8, 1)
    a = analyze(prog(ATOMIC_ADD_MAP_VALUE.format(7)), "socket_filter", maps={7: ref})
    assert a.aux[7].ptr_type is RegType.PTR_TO_STACK


# check_return_code's ranges by attach type: bind may return 0..3 (bind_perm.o), recvmsg exactly 1.
RET3 = "r0 = 3\nexit"


@pytest.mark.kernel
def test_bind_may_return_3():
    kernel_agrees(RET3, "cgroup_sock_addr", attach_type=8)  # BPF_CGROUP_INET4_BIND


def test_return_ranges_by_attach_type():
    analyze(prog(RET3), "cgroup_sock_addr", attach_type=9)
    analyze(prog(RET3), "cgroup_sock_addr")  # unknown attach type: the widest range
    with pytest.raises(AnalysisRejected, match="should have been in"):
        analyze(prog(RET3), "cgroup_sock_addr", attach_type=10)  # INET4_CONNECT: 0..1
    with pytest.raises(AnalysisRejected, match="should have been in"):
        analyze(prog("r0 = 0\nexit"), "cgroup_sock_addr", attach_type=19)  # UDP4_RECVMSG: 1
    assert return_range(ProgType.CGROUP_SKB, 0) == (0, 1)
    assert return_range(ProgType.CGROUP_SKB, 1) == (0, 3)


# --- kfuncs, iterators, dynptrs, callbacks, frozen .rodata -------------------------------------

def _kt():
    from bpfpatch.btf.vmlinux import kernel_types, kfunc_id

    kt = kernel_types()
    if kt is None:
        pytest.skip("no readable kernel BTF (/sys/kernel/btf/vmlinux)")
    return kt, kfunc_id


def _after(a, slot: int, regno: int):
    return [s.regs[regno] for s in a.aux[slot].extra["after"]]


# bpf_task_from_pid acquires a task_struct reference or gives NULL; bpf_task_release drops it.
TASK_FROM_PID = """
r1 = 1
call kfunc#{from_pid}
if r0 == 0 goto +2
r1 = r0
call kfunc#{release}
r0 = 0
exit
"""


@pytest.mark.kernel
def test_kfunc_acquire_null_check_release():
    kt, kid = _kt()
    text = TASK_FROM_PID.format(from_pid=kid("bpf_task_from_pid"), release=kid("bpf_task_release"))
    a = kernel_agrees(text.replace("{", "{{").replace("}", "}}"), "sched_cls", kernel_types=kt)
    r0 = _after(a, 1, 0)[0]
    assert r0.type is RegType.PTR_TO_BTF_ID_OR_NULL and r0.btf_name == "task_struct" and r0.ref_obj_id
    assert a.aux[1].extra["kfunc"] == "bpf_task_from_pid"


def test_kfunc_reference_leak_is_refused():
    kt, kid = _kt()
    leak = f"r1 = 1\ncall kfunc#{kid('bpf_task_from_pid')}\nr0 = 0\nexit"
    with pytest.raises(AnalysisRejected, match="Unreleased reference"):
        analyze(prog(leak), "sched_cls", kernel_types=kt)
    # without kernel types a kfunc is an unknown scalar (the old behaviour): nothing to leak
    analyze(prog(leak), "sched_cls")


# An open-coded iterator: new puts it on the stack (a reference), next forks into an element and
# NULL (drained), destroy releases it.
ITER_NUM = """
r6 = r10
r6 += -8
r1 = r6
r2 = 0
r3 = 5
call kfunc#{new}
r7 = 0
r1 = r6
call kfunc#{next}
if r0 == 0 goto +3
r2 = *(u32 *)(r0 + 0)
r7 += r2
goto -6
r1 = r6
call kfunc#{destroy}
r0 = 0
exit
"""


@pytest.mark.kernel
def test_open_coded_iterator():
    kt, kid = _kt()
    text = ITER_NUM.format(new=kid("bpf_iter_num_new"), next=kid("bpf_iter_num_next"),
                           destroy=kid("bpf_iter_num_destroy"))
    a = kernel_agrees(text.replace("{", "{{").replace("}", "}}"), "sched_cls", kernel_types=kt)
    r0s = [s.regs[0] for s in a.aux[9].states]  # at `if r0 == 0`: an element (4 bytes) or drained (NULL)
    assert {r.type for r in r0s} == {RegType.PTR_TO_MEM, RegType.SCALAR}
    assert {r.mem_size for r in r0s if r.type is RegType.PTR_TO_MEM} == {4}
    assert all(s.cur.stack[0].types == "iiiiiiii" for s in a.aux[5].extra["after"])


def test_iterator_not_destroyed_is_a_leak():
    kt, kid = _kt()
    text = ITER_NUM.format(new=kid("bpf_iter_num_new"), next=kid("bpf_iter_num_next"),
                           destroy=kid("bpf_iter_num_destroy")).replace(f"call kfunc#{kid('bpf_iter_num_destroy')}",
                                                                       "r1 = 0")
    with pytest.raises(AnalysisRejected, match="Unreleased reference"):
        analyze(prog(text), "sched_cls", kernel_types=kt)


# A ringbuf dynptr is a reference held by two stack slots; submit/discard releases it
# (dynptr_success.o: refused as "R1 must be referenced when passed to release function").
RINGBUF_DYNPTR = """
r1 = map[fd:{0}]
r2 = 8
r3 = 0
r4 = r10
r4 += -16
call bpf_ringbuf_reserve_dynptr
r1 = r10
r1 += -16
r2 = 0
call bpf_ringbuf_discard_dynptr
r0 = 0
exit
"""


@pytest.mark.kernel
def test_ringbuf_dynptr_reference():
    from bpfpatch.kernel import MapSpec, MapType

    a = kernel_agrees(RINGBUF_DYNPTR, "socket_filter", maps=[MapSpec("rb", MapType.RINGBUF, 0, 0, 4096)])
    after = a.aux[6].extra["after"][0]
    assert after.cur.stack[1].types == "dddddddd" and after.cur.stack[1].spilled.ref_obj_id in after.refs
    assert a.aux[10].extra["after"][0].refs == []


def test_ringbuf_dynptr_leak_is_refused():
    ref = MapRef(0, "rb", 7, 27, 0, 0, 4096)
    leak = "\n".join(RINGBUF_DYNPTR.format(7).strip().splitlines()[:6]) + "\nr0 = 0\nexit"
    with pytest.raises(AnalysisRejected, match="Unreleased reference"):
        analyze(prog(leak), "socket_filter", maps={7: ref})


# bpf_loop's callback is verified as called with (index, ctx): its instructions are seen, its
# return value is range-checked.
BPF_LOOP = """
r1 = 4
r2 = subprog[+8]
r3 = r10
r3 += -8
r4 = 0
*(u64 *)(r10 - 8) = r4
call bpf_loop
r0 = 0
exit
r0 = *(u64 *)(r2 + 0)
r0 = 0
exit
"""


def test_bpf_loop_callback_is_analysed():
    a = analyze(prog(BPF_LOOP), "socket_filter")
    assert all(x.seen for x in a.aux if x is not None)  # the old analysis never entered the callback
    assert a.aux[10].ptr_type is RegType.PTR_TO_STACK  # the callback's ctx is the caller's fp-8


@pytest.mark.kernel
def test_callbacks_dynptr_rodata_agree_with_kernel(objdir):
    """bpf_loop, bpf_for_each_map_elem and timer callbacks, a ringbuf dynptr, .rodata constants
    (tests/progs/analysis/callbacks.c): accepted, every callback instruction seen, types agree; the
    zext_dst oracle skips loads the kernel rewrites (bind_family's bpf_sock loads)."""
    import sys
    from pathlib import Path

    from conftest import PROGS, compile_bpf

    sys.path.insert(0, str(Path(__file__).parent))
    from analysis_kernel import check_object

    results = check_object(str(compile_bpf(PROGS / "analysis" / "callbacks.c", objdir)))
    assert {r.name for r in results} == {"loop_and_walk", "ringbuf_dynptr", "bind_family"}
    for r in results:
        assert not r.kernel_error, r.kernel_error
        assert not r.our_error, r.our_error
        assert r.cmp.types_agree, r.cmp.type_mismatches[:3]
        assert r.cmp.unseen == []  # the kernel walked no instruction we did not
        assert r.zext_diff == []


def test_callback_return_range():
    bad = BPF_LOOP.replace("r0 = 0\nexit\n", "r0 = 2\nexit\n")
    bad = BPF_LOOP.rsplit("r0 = 0\nexit", 1)[0] + "r0 = 2\nexit\n"
    with pytest.raises(AnalysisRejected, match="At callback return"):
        analyze(prog(bad), "socket_filter")


def test_frozen_rodata_loads_are_constants():
    value = (16).to_bytes(4, "little") + bytes(4)
    rodata = MapRef(0, "x.rodata", 7, ARRAY, 4, 8, 1, frozen_value=value)
    text = "r1 = map[fd:7][0]+0\nr2 = *(u32 *)(r1 + 0)\nr3 = *(u8 *)(r1 + 1)\nr0 = 0\nexit"
    a = analyze(prog(text), "socket_filter", maps={7: rodata})
    assert [r.const_value() for r in _after(a, 2, 2)] == [16] and _after(a, 2, 2)[0].is_const()
    assert _after(a, 3, 3)[0].is_const() and _after(a, 3, 3)[0].const_value() == 0
    plain = MapRef(0, "x.bss", 7, ARRAY, 4, 8, 1)
    assert not _after(analyze(prog(text), "socket_filter", maps={7: plain}), 2, 2)[0].is_const()


# A NULL check of a socket *cast* (sk_fullsock of a looked-up socket) does not release the socket:
# the old analysis dropped the lookup's reference on the cast's NULL branch, so it accepted the leak
# the kernel refuses ("Unreleased reference").
SK_CAST = """
r6 = r1
r2 = 0
*(u64 *)(r10 - 8) = r2
*(u64 *)(r10 - 16) = r2
r1 = r6
r2 = r10
r2 += -16
r3 = 12
r4 = -1
r5 = 0
call bpf_sk_lookup_tcp
if r0 == 0 goto +12
r7 = r0
r1 = r0
call bpf_sk_fullsock
if r0 != 0 goto +4
{null_branch}
r0 = 0
exit
r1 = r7
call bpf_sk_release
r0 = 0
exit
r0 = 0
exit
"""
SK_CAST_OK = SK_CAST.replace("{null_branch}", "r1 = r7\ncall bpf_sk_release")
SK_CAST_LEAK = SK_CAST.replace("{null_branch}", "r1 = 0\nr1 = 0")


@pytest.mark.kernel
def test_socket_cast_null_check_keeps_the_reference():
    from bpfpatch.errors import VerifierError
    from bpfpatch.kernel import load_program

    kernel_agrees(SK_CAST_OK.replace("{", "{{").replace("}", "}}"), "sched_cls")
    with pytest.raises(VerifierError, match="Unreleased reference"):
        load_program(prog(SK_CAST_LEAK), "sched_cls", log_level=1)
    with pytest.raises(AnalysisRejected, match="Unreleased reference"):
        analyze(prog(SK_CAST_LEAK), "sched_cls")


def test_bpf_throw_ends_the_path():
    kt, kid = _kt()
    a = analyze(prog(f"r1 = 0\ncall kfunc#{kid('bpf_throw')}\nr0 = 0\nexit"), "sched_cls", kernel_types=kt)
    assert a.aux[1].seen and not a.aux[2].seen and not a.aux[3].seen  # the old analysis went on after it


@pytest.mark.kernel
def test_graph_nodes_and_refcount_acquire():
    """refcounted_kptr.o (selftests): bpf_rbtree_add / bpf_list_push_* take the node's ownership (the
    program keeps a non-owning pointer), bpf_refcount_acquire of an owning reference is never NULL."""
    import sys
    from pathlib import Path

    obj = Path("/tmp/objects-corpus/refcounted_kptr.o")
    if not obj.exists():
        pytest.skip(f"{obj} missing (tests/objcorpus.py --selftests builds the selftest corpus)")
    sys.path.insert(0, str(Path(__file__).parent))
    from analysis_kernel import check_object

    accepted = [r for r in check_object(str(obj)) if not r.kernel_error]
    assert len(accepted) >= 10
    assert [r.name for r in accepted if r.our_error] == []
