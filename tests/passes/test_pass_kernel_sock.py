"""The `kernel` pass's conversions of the socket contexts (sock_ops, sk_msg), against this kernel's xlated output."""

from __future__ import annotations

import pytest

from bpfpatch import Insn, Program
from bpfpatch.passes.kernel_ctx_sock import SOCK_OPS
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
