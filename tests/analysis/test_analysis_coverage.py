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
