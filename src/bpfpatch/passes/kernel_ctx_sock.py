"""Context conversions of the socket structures (net/core/filter.c).

``convert_ctx_accesses`` lowers accesses through more than the context
pointer: a register the verifier proved is ``PTR_TO_SOCKET`` or
``PTR_TO_SOCK_COMMON`` (``struct bpf_sock``, from ``skb->sk``,
``bpf_sk_lookup_tcp``, ``bpf_sk_fullsock``), ``PTR_TO_TCP_SOCK``
(``struct bpf_tcp_sock``) or ``PTR_TO_XDP_SOCK`` is converted with
``bpf_sock_convert_ctx_access``, ``bpf_tcp_sock_convert_ctx_access`` and
``bpf_xdp_sock_convert_ctx_access``.  ``struct bpf_sock`` is also the context
of cgroup/sock programs (``sock_filter_verifier_ops``).

Each function returns ``(replacement, target_size)`` for one access (already
widened when narrow), or None for an offset the kernel does not convert.
"""

from __future__ import annotations

from bpfpatch.isa import Insn
from bpfpatch.isa.build import jmp_imm, ldx_mem, mov64_imm
from bpfpatch.isa.opcodes import CLASS_MASK, SIZE_MASK, JmpOp, Mode, Size
from bpfpatch.passes.ctx_layout import member

READ, WRITE = "read", "write"
SIZE_OF_BYTES = {1: Size.B, 2: Size.H, 4: Size.W, 8: Size.DW}
NO_QUEUE_MAPPING = 0xFFFF

# struct bpf_sock (uapi): field -> offset.
BPF_SOCK = dict(bound_dev_if=0, family=4, type=8, protocol=12, mark=16, priority=20, src_ip4=24, src_ip6=28,
                src_port=44, dst_port=48, dst_ip4=52, dst_ip6=56, state=72, rx_queue_mapping=76)

#: bpf_sock fields read (and, where writable, stored) as one kernel field of its own size.
_SOCK_PLAIN = {
    "bound_dev_if": "sock_common.skc_bound_dev_if", "mark": "sock.sk_mark", "priority": "sock.sk_priority",
    "family": "sock_common.skc_family", "type": "sock.sk_type", "protocol": "sock.sk_protocol",
    "src_port": "sock_common.skc_num", "dst_port": "sock_common.skc_dport", "state": "sock_common.skc_state",
}
#: The three a cgroup/sock program may write (sock_filter_is_valid_access); BPF_EMIT_STORE, 4 bytes.
_SOCK_WRITABLE = ("bound_dev_if", "mark", "priority")
_SOCK_ADDR = {"src_ip4": "sock_common.skc_rcv_saddr", "dst_ip4": "sock_common.skc_daddr"}
_SOCK_ADDR6 = {"src_ip6": "sock_common.skc_v6_rcv_saddr", "dst_ip6": "sock_common.skc_v6_daddr"}

# struct bpf_tcp_sock (uapi): fields in order, with their sizes.
_TCP_SOCK_FIELDS = (
    ("snd_cwnd", 4), ("srtt_us", 4), ("rtt_min", 4), ("snd_ssthresh", 4), ("rcv_nxt", 4), ("snd_nxt", 4),
    ("snd_una", 4), ("mss_cache", 4), ("ecn_flags", 4), ("rate_delivered", 4), ("rate_interval_us", 4),
    ("packets_out", 4), ("retrans_out", 4), ("total_retrans", 4), ("segs_in", 4), ("data_segs_in", 4),
    ("segs_out", 4), ("data_segs_out", 4), ("lost_out", 4), ("sacked_out", 4), ("bytes_received", 8),
    ("bytes_acked", 8), ("dsack_dups", 4), ("delivered", 4), ("delivered_ce", 4), ("icsk_retransmits", 4),
)


def _offsets(fields: tuple[tuple[str, int], ...]) -> dict[str, int]:
    out, off = {}, 0
    for name, size in fields:
        off = (off + size - 1) & ~(size - 1)
        out[name] = off
        off += size
    return out


BPF_TCP_SOCK = _offsets(_TCP_SOCK_FIELDS)
# struct bpf_xdp_sock (uapi).
BPF_XDP_SOCK = dict(queue_id=0)


def bpf_sock_field_size(off: int, size: int) -> int:
    """The ``ctx_field_size`` bpf_sock_is_valid_access records for an access of `size` bytes at `off`
    (0: none; then the access is not narrow).  For when the facts do not carry it."""
    ranges = [(BPF_SOCK[n], BPF_SOCK[n] + 4) for n in ("src_ip4", "dst_ip4")]
    ranges += [(BPF_SOCK[n], BPF_SOCK[n] + 16) for n in ("src_ip6", "dst_ip6")]
    exact = {BPF_SOCK[n] for n in ("state", "family", "type", "protocol", "src_port", "rx_queue_mapping")}
    if off in exact or any(lo <= off < hi for lo, hi in ranges):
        return 4
    if BPF_SOCK["dst_port"] <= off < BPF_SOCK["dst_port"] + 2:
        return 4 if size == 4 else 2
    return 0


def _store(si: Insn, size: Size, off: int) -> Insn:
    """BPF_EMIT_STORE: the access's own class (ST or STX), registers and immediate, at `off`."""
    return Insn((si.code & CLASS_MASK) | size | Mode.MEM, si.dst, si.src, off, si.imm)


def _ld(si: Insn, name: str, extra: int = 0, size: Size | None = None) -> Insn:
    off, n = member(name)
    return ldx_mem(size if size is not None else SIZE_OF_BYTES[n], si.dst, si.src, off + extra)


def convert_bpf_sock(kind: str, si: Insn) -> tuple[list[Insn], int] | None:
    """bpf_sock_convert_ctx_access."""
    off = si.off
    by_off = {v: k for k, v in BPF_SOCK.items()}
    name = by_off.get(off)
    if name in _SOCK_PLAIN:
        path = _SOCK_PLAIN[name]
        if kind == WRITE:
            return ([_store(si, Size.W, member(path)[0])], 0) if name in _SOCK_WRITABLE else None
        return [_ld(si, path)], member(path)[1]
    if kind == WRITE:
        return None
    size = Size(si.code & SIZE_MASK)
    if name in _SOCK_ADDR:
        return [_ld(si, _SOCK_ADDR[name], size=size)], 4
    for field, path in _SOCK_ADDR6.items():
        base = BPF_SOCK[field]
        if base <= off < base + 16:
            return [_ld(si, path, off - base, size=size)], 4
    if name == "rx_queue_mapping":
        return [_ld(si, "sock_common.skc_rx_queue_mapping"), jmp_imm(JmpOp.JNE, si.dst, NO_QUEUE_MAPPING, 1),
                mov64_imm(si.dst, -1)], 4  # 6.18: MOV64 (6.12's source: MOV32)
    return None


def convert_tcp_sock(kind: str, si: Insn) -> tuple[list[Insn], int] | None:
    """bpf_tcp_sock_convert_ctx_access: every field is one load of the tcp_sock member."""
    if kind == WRITE:
        return None
    name = {v: k for k, v in BPF_TCP_SOCK.items()}.get(si.off)
    if name is None:
        return None
    if name == "rtt_min":
        return [ldx_mem(Size.W, si.dst, si.src, member("tcp_sock.rtt_min")[0] + member("minmax_sample.v")[0])], 0
    if name == "icsk_retransmits":
        return [_ld(si, "inet_connection_sock.icsk_retransmits")], 0
    return [_ld(si, f"tcp_sock.{name}")], 0


def convert_xdp_sock(kind: str, si: Insn) -> tuple[list[Insn], int] | None:
    """bpf_xdp_sock_convert_ctx_access: queue_id only."""
    if kind == WRITE or si.off != BPF_XDP_SOCK["queue_id"]:
        return None
    return [_ld(si, "xdp_sock.queue_id")], 0


__all__ = ["BPF_SOCK", "bpf_sock_field_size", "BPF_TCP_SOCK", "BPF_XDP_SOCK", "convert_bpf_sock", "convert_tcp_sock", "convert_xdp_sock"]
