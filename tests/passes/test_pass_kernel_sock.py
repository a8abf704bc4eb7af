"""The `kernel` pass's conversions of the socket contexts (sock_ops, sk_msg, sockopt) and the flow
dissector's, against this kernel's xlated output."""

from __future__ import annotations

import pytest

from bpfpatch import Insn, Program
from bpfpatch.passes.kernel_ctx_sock import SK_MSG, SK_REUSEPORT, SOCK_OPS, SOCKOPT
from test_pass_kernel_maps import _compare

_SZ = {1: 0x10, 2: 0x08, 4: 0x00, 8: 0x18}
_U64 = {"bytes_received", "bytes_acked", "sk", "skb_data", "skb_data_end", "skb_hwtstamp"}
SOCK_OPS_READS = [(n, o, 8 if n in _U64 else 4) for n, o in SOCK_OPS.items()] + [
    ("reply[2]", 12, 4), ("remote_ip6[3]", 44, 4), ("local_ip6[1]", 52, 4), ("skb_tcp_flags byte", 212, 1)]


def _ld(size: int, dst: int, src: int, off: int) -> Insn:
    return Insn(0x61 | _SZ[size] if size != 8 else 0x79, dst, src, off, 0)


@pytest.mark.kernel
@pytest.mark.parametrize("name, off, size", SOCK_OPS_READS, ids=[r[0] for r in SOCK_OPS_READS])
@pytest.mark.parametrize("dst, src", [(2, 1), (1, 1), (9, 1), (8, 9)])
def test_sock_ops_reads_match_the_kernel(name, off, size, dst, src):
    """Every bpf_sock_ops field, with the destination the base or the borrowed register."""
    if name in ("skb_data", "skb_data_end", "sk") and dst == src:
        pytest.skip("a pointer field read into its base register: the verifier refuses later uses")
    prog = Program.from_insns([Insn(0xBF, src, 1) if src != 1 else Insn(0xB7, 0, 0, 0, 0), _ld(size, dst, src, off),
                               Insn(0xB7, 0, 0, 0, 1), Insn(0x95)])
    ours, theirs = _compare(prog, "sock_ops", {})
    assert ours == theirs


@pytest.mark.kernel
@pytest.mark.parametrize("off", [4, 8, 164])
@pytest.mark.parametrize("dst, src", [(1, 2), (1, 9), (9, 8)])
def test_sock_ops_writes_match_the_kernel(off, dst, src):
    for store in (Insn(0x63, dst, src, off, 0), Insn(0x62, dst, 0, off, 7)):
        prog = Program.from_insns([Insn(0xBF, dst, 1), Insn(0xB7, src, 0, 0, 3), store, Insn(0xB7, 0, 0, 0, 1),
                                   Insn(0x95)])
        ours, theirs = _compare(prog, "sock_ops", {})
        assert ours == theirs, store


SK_MSG_READS = [(n, o, 8 if n in ("data", "data_end", "sk") else 4) for n, o in SK_MSG.items()] + [
    ("remote_ip6[2]", 36, 4), ("local_ip6[3]", 56, 4)]


@pytest.mark.kernel
@pytest.mark.parametrize("name, off, size", SK_MSG_READS, ids=[r[0] for r in SK_MSG_READS])
def test_sk_msg_reads_match_the_kernel(name, off, size):
    prog = Program.from_insns([_ld(size, 2, 1, off), Insn(0xB7, 0, 0, 0, 1), Insn(0x95)])
    ours, theirs = _compare(prog, "sk_msg", {})
    assert ours == theirs


@pytest.mark.kernel
@pytest.mark.parametrize("off", [76, 80, 144])
def test_flow_dissector_reads_its_own_structure(off):
    """A flow dissector's __sk_buff is struct bpf_flow_dissector: data, data_end and flow_keys only."""
    prog = Program.from_insns([_ld(4 if off != 144 else 8, 2, 1, off), Insn(0xB7, 0, 0, 0, 0), Insn(0x95)])
    ours, theirs = _compare(prog, "flow_dissector", {})
    assert ours == theirs


BPF_CGROUP_GETSOCKOPT, BPF_CGROUP_SETSOCKOPT, BPF_CGROUP_SYSCTL = 21, 22, 18
BPF_SK_REUSEPORT_SELECT_OR_MIGRATE = 40


@pytest.mark.kernel
@pytest.mark.parametrize("attach", [BPF_CGROUP_GETSOCKOPT, BPF_CGROUP_SETSOCKOPT])
@pytest.mark.parametrize("name, off", list(SOCKOPT.items()))
def test_sockopt_reads_and_writes_match_the_kernel(attach, name, off):
    size = 8 if name in ("sk", "optval", "optval_end") else 4
    progs = [[_ld(size, 2, 1, off)]]
    if size == 4:
        progs += [[Insn(0xB7, 2, 0, 0, 1), Insn(0x63, 1, 2, off, 0)], [Insn(0x62, 1, 0, off, 1)],
                  [Insn(0xBF, 9, 1), Insn(0xB7, 8, 0, 0, 1), Insn(0x63, 9, 8, off, 0)]]
    compared = 0
    for body in progs:
        prog = Program.from_insns(body + [Insn(0xB7, 0, 0, 0, 1), Insn(0x95)])
        try:
            ours, theirs = _compare(prog, "cgroup_sockopt", {}, attach=attach)
        except pytest.skip.Exception:
            continue  # this hook may not write (or read) that field
        assert ours == theirs, body
        compared += 1
    # setsockopt hooks have no retval here (the kernel refuses the access)
    assert compared or (name == "retval" and attach == BPF_CGROUP_SETSOCKOPT)


@pytest.mark.kernel
@pytest.mark.parametrize("name, off", list(SK_REUSEPORT.items()))
def test_sk_reuseport_reads_match_the_kernel(name, off):
    size = 8 if name in ("data", "data_end", "sk", "migrating_sk") else 4
    prog = Program.from_insns([_ld(size, 2, 1, off), Insn(0xB7, 0, 0, 0, 1), Insn(0x95)])
    ours, theirs = _compare(prog, "sk_reuseport", {}, attach=BPF_SK_REUSEPORT_SELECT_OR_MIGRATE)
    assert ours == theirs



@pytest.mark.kernel
@pytest.mark.parametrize("body", [
    [_ld(4, 2, 1, 0)], [_ld(1, 2, 1, 0)], [_ld(4, 2, 1, 4)], [_ld(4, 1, 1, 4)],
    [Insn(0xB7, 2, 0, 0, 1), Insn(0x63, 1, 2, 4, 0)], [Insn(0x62, 1, 0, 4, 3)], [Insn(0xBF, 9, 1), Insn(0x63, 9, 1, 4, 0)],
], ids=["write", "write byte", "file_pos", "file_pos into base", "store file_pos", "store imm", "store via r9"])
def test_sysctl_accesses_match_the_kernel(body):
    prog = Program.from_insns(body + [Insn(0xB7, 0, 0, 0, 1), Insn(0x95)])
    ours, theirs = _compare(prog, "cgroup_sysctl", {}, attach=BPF_CGROUP_SYSCTL)
    assert ours == theirs



@pytest.mark.kernel
@pytest.mark.parametrize("ptype", ["socket_filter", "sched_cls"])
@pytest.mark.parametrize("size, off", [(1, 48), (1, 49), (2, 66), (4, 52), (1, 67)])
def test_sk_buff_cb_is_accessed_at_any_size(ptype, size, off):
    """__sk_buff.cb has no field size: a byte store and load stay byte accesses (never widened)."""
    st, ld = {1: (0x73, 0x71), 2: (0x6B, 0x69), 4: (0x63, 0x61)}[size]
    prog = Program.from_insns([Insn(0xB7, 0, 0, 0, 13), Insn(st, 1, 0, off, 0), Insn(ld, 0, 1, off, 0), Insn(0x95)])
    ours, theirs = _compare(prog, ptype, {})
    assert ours == theirs
