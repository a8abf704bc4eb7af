"""The `kernel` pass's may_goto rewrite (6.18's timed form on x86-64) against this kernel's xlated output."""

from __future__ import annotations

import struct

import pytest

from bpfpatch import Program
from bpfpatch.isa import decode_slots, slot_rows
from bpfpatch.passes import PassContext, run_passes
from kernel_selftests import comparable_rows


def _ins(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | src << 4, off, imm)


MAY_GOTO = {  # may_goto is JMP | JCOND (0xe5) with src 0
    "one": [(0xB7, 0, 0, 0, 0), (0xE5, 0, 0, 1, 0), (0xB7, 0, 0, 0, 1), (0x95,)],
    "below a 4-byte slot": [(0x62, 10, 0, -4, 0), (0xB7, 0, 0, 0, 0), (0xE5, 0, 0, 1, 0), (0xB7, 0, 0, 0, 1), (0x95,)],
    "two share the count": [(0xB7, 0, 0, 0, 0), (0xE5, 0, 0, 1, 0), (0xB7, 0, 0, 0, 1), (0xE5, 0, 0, 1, 0),
                            (0xB7, 0, 0, 0, 1), (0x95,)],
    "in a subprogram": [(0xB7, 1, 0, 0, 0), (0x85, 0, 1, 0, 1), (0x95,), (0x7A, 10, 0, -8, 0), (0xB7, 0, 0, 0, 0),
                        (0xE5, 0, 0, 1, 0), (0xB7, 0, 0, 0, 1), (0x95,)],
    # a jump back to the first instruction still lands on it, not on the count's initialisation
    "loop back to the start": [(0xE5, 0, 0, 1, 0), (0x05, 0, 0, -2, 0), (0xB7, 0, 0, 0, 0), (0x95,)],
    "loop back to a subprogram's start": [(0xB7, 1, 0, 0, 0), (0x85, 0, 1, 0, 1), (0x95,), (0xE5, 0, 0, 1, 0),
                                          (0x05, 0, 0, -2, 0), (0xB7, 0, 0, 0, 0), (0x95,)],
}


@pytest.mark.kernel
@pytest.mark.parametrize("name", list(MAY_GOTO))
def test_may_goto_matches_the_kernel(name):
    from bpfpatch.kernel import load_program

    raw = b"".join(_ins(*i) for i in MAY_GOTO[name])
    with load_program(raw, "socket_filter") as lp:
        theirs = comparable_rows(slot_rows(decode_slots(lp.xlated())))
    prog = Program(decode_slots(raw))
    ours = comparable_rows(slot_rows(run_passes(prog, ["kernel"], PassContext(prog_type="socket_filter")).slots),
                           xlated=False)
    assert ours == theirs
    assert len(theirs) > len(MAY_GOTO[name]) + 6  # the count's initialisation and the countdown are there


def _kfunc_masked(rows: list) -> list:
    """The kernel's kfunc call imm is its address: masked."""
    return [(c, d, s, o, 0 if (c, s) == (0x85, 2) else i) for c, d, s, o, i in rows]


@pytest.mark.kernel
@pytest.mark.parametrize("branch", [False, True], ids=["always", "on a branch"])
def test_bpf_throw_gets_the_default_exception_callback(branch):
    """A program that may call bpf_throw gets do_misc_fixups' hidden last subprogram ``r0 = r1; exit``
    (the cookie becomes the return value); the exit after the throw is dead and goes."""
    from bpfpatch.btf.vmlinux import kernel_btf_available, kfunc_id
    from bpfpatch.kernel import load_program

    if not kernel_btf_available():
        pytest.skip("no /sys/kernel/btf/vmlinux to find bpf_throw in")
    throw = (0x85, 0, 2, 0, kfunc_id("bpf_throw"))
    rows = [(0x85, 0, 0, 0, 7), (0x55, 0, 0, 2, 0), (0xB7, 1, 0, 0, 3), throw, (0xB7, 0, 0, 0, 1), (0x95,)] if branch \
        else [(0xB7, 1, 0, 0, 3), throw, (0x95,)]
    raw = b"".join(_ins(*i) for i in rows)
    with load_program(raw, "sched_cls") as lp:
        theirs = comparable_rows(slot_rows(decode_slots(lp.xlated())))
    from bpfpatch.btf.vmlinux import kernel_types

    ctx = PassContext(prog_type="sched_cls", options={"kernel": {"analysis": {"kernel_types": kernel_types}}})
    ours = comparable_rows(slot_rows(run_passes(Program(decode_slots(raw)), ["kernel"], ctx).slots), xlated=False)
    assert _kfunc_masked(ours) == _kfunc_masked(theirs)
    assert theirs[-2:] == [(0xBF, 0, 1, 0, 0), (0x95, 0, 0, 0, 0)]


#: __sk_buff.data / data_end: a program that writes one byte of its packet.
PACKET_WRITE = [(0x61, 2, 1, 76, 0), (0x61, 3, 1, 80, 0), (0xBF, 4, 2, 0, 0), (0x07, 4, 0, 0, 1),
                (0x2D, 4, 3, 1, 0), (0x72, 2, 0, 0, 7), (0xB7, 0, 0, 0, 0), (0x95,)]


@pytest.mark.kernel
@pytest.mark.parametrize("ptype", ["sched_cls", "lwt_xmit", "sk_skb"])
def test_a_direct_packet_write_gets_the_unclone_prologue(ptype):
    """tc and lwt_xmit (tc_cls_act_prologue, TC_ACT_SHOT on failure) and sk_skb (SK_DROP) unclone the
    skb before a program that writes its packet."""
    from bpfpatch.kernel import load_program

    raw = b"".join(_ins(*i) for i in PACKET_WRITE)
    with load_program(raw, ptype) as lp:
        theirs = comparable_rows(slot_rows(decode_slots(lp.xlated())))
    ours = comparable_rows(slot_rows(run_passes(Program(decode_slots(raw)), ["kernel"], PassContext(prog_type=ptype)).slots),
                           xlated=False)
    assert ours == theirs
    assert theirs[0][:3] == (0x71, 6, 1) and len(theirs) >= len(PACKET_WRITE) + 10  # the prologue is there


@pytest.mark.kernel
def test_a_helpers_fixed_size_output_is_unknown_after_the_call():
    """bpf_check_mtu writes the MTU into its u32 argument (ARG_PTR_TO_FIXED_SIZE_MEM, MEM_WRITE): the
    zero stored there before is not known after the call, so the test of it stays (as in the kernel)."""
    from bpfpatch.kernel import load_program

    rows = [(0x62, 10, 0, -4, 0), (0xB7, 2, 0, 0, 0), (0xBF, 3, 10, 0, 0), (0x07, 3, 0, 0, -4), (0xB7, 4, 0, 0, 0),
            (0xB7, 5, 0, 0, 0), (0x85, 0, 0, 0, 163), (0x61, 0, 10, -4, 0), (0x15, 0, 0, 1, 0), (0xB7, 0, 0, 0, 7),
            (0x95,)]
    raw = b"".join(_ins(*i) for i in rows)
    with load_program(raw, "sched_cls") as lp:
        theirs = comparable_rows(slot_rows(decode_slots(lp.xlated())))
    ours = comparable_rows(slot_rows(run_passes(Program(decode_slots(raw)), ["kernel"],
                                                PassContext(prog_type="sched_cls")).slots), xlated=False)
    assert ours == theirs
    assert len(theirs) == len(rows)
