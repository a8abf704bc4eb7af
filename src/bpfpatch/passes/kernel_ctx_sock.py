"""Context conversions of the socket structures (net/core/filter.c).

``convert_ctx_accesses`` lowers accesses through more than the context
pointer: a register the verifier proved is ``PTR_TO_SOCKET`` or
``PTR_TO_SOCK_COMMON`` (``struct bpf_sock``, from ``skb->sk``,
``bpf_sk_lookup_tcp``, ``bpf_sk_fullsock``), ``PTR_TO_TCP_SOCK``
(``struct bpf_tcp_sock``) or ``PTR_TO_XDP_SOCK`` is converted with
``bpf_sock_convert_ctx_access``, ``bpf_tcp_sock_convert_ctx_access`` and
``bpf_xdp_sock_convert_ctx_access``.  ``struct bpf_sock`` is also the context
of cgroup/sock programs (``sock_filter_verifier_ops``).

``struct bpf_sock_ops`` (sock_ops programs) is converted by `convert_sock_ops`
(``sock_ops_convert_ctx_access``): the tcp_sock fields are read only when
the socket is a full one, through a register borrowed and saved in the
kernel context's ``temp`` when the access's destination is its base.

Each function returns ``(replacement, target_size)`` for one access (already
widened when narrow), or None for an offset the kernel does not convert.
"""

from __future__ import annotations

from bpfpatch.ctxstructs import BPF_SOCK_OPS, SK_BUFF, SK_MSG_MD, SK_REUSEPORT_MD
from bpfpatch.ctxstructs import BPF_SOCK as BPF_SOCK_STRUCT
from bpfpatch.ctxstructs import SOCKOPT as SOCKOPT_STRUCT
from bpfpatch.ctxstructs import SYSCTL as SYSCTL_STRUCT
from bpfpatch.isa import Insn
from bpfpatch.isa.build import alu32_imm, alu64_reg, ja, jmp_imm, ldx_mem, mov32_imm, mov64_imm, stx_mem
from bpfpatch.isa.opcodes import AX_REG, CLASS_MASK, SIZE_MASK, AluOp, JmpOp, Mode, Size
from bpfpatch.passes.ctx_layout import member

READ, WRITE = "read", "write"
SIZE_OF_BYTES = {1: Size.B, 2: Size.H, 4: Size.W, 8: Size.DW}
NO_QUEUE_MAPPING = 0xFFFF

# struct bpf_sock (uapi): field -> offset.
BPF_SOCK = BPF_SOCK_STRUCT.offsets()

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
                mov32_imm(si.dst, -1)], 4  # 6.18.44 and 6.12's source: MOV32 (the 6.18 of stop 20: MOV64)
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




# struct bpf_sock_ops (uapi): the fields with a conversion of their own; the tcp_sock
# fields from snd_cwnd on follow below.
SOCK_OPS = BPF_SOCK_OPS.offsets()
#: Read through the full socket (SOCK_OPS_GET_TCP_SOCK_FIELD): bpf_sock_ops name -> tcp_sock member.
_SOCK_OPS_TCP = ("snd_cwnd", "srtt_us", "snd_ssthresh", "rcv_nxt", "snd_nxt", "snd_una", "mss_cache", "ecn_flags",
                 "rate_delivered", "rate_interval_us", "packets_out", "retrans_out", "total_retrans", "segs_in",
                 "data_segs_in", "segs_out", "data_segs_out", "lost_out", "sacked_out", "bytes_received",
                 "bytes_acked", "bpf_sock_ops_cb_flags")
_KERN = "bpf_sock_ops_kern"


def _scratch(si: Insn) -> int:
    """The register the sock_ops macros borrow: r9, else r8, else r7 (never dst or src)."""
    reg = 9
    for _ in range(2):
        if reg in (si.dst, si.src):
            reg -= 1
    return reg


def _sock_ops_get(si: Insn, field: tuple[int, int] | None) -> list[Insn]:
    """SOCK_OPS_GET_FIELD (field = (offset, size) in the socket) or, with None, SOCK_OPS_GET_SK.

    6.18 reads a field only when ``is_locked_tcp_sock`` (6.12's source: ``is_fullsock``);
    the socket itself when ``is_fullsock``.
    """
    d, s = si.dst, si.src
    reg, fullsock, jmp = _scratch(si), d, 2 if field is not None else 1
    temp = member(f"{_KERN}.temp")[0]
    out = []
    if d == s:
        out.append(stx_mem(Size.DW, s, reg, temp))
        fullsock, jmp = reg, jmp + 2
    out.append(_ldk(fullsock, s, "is_fullsock" if field is None else "is_locked_tcp_sock"))
    out.append(jmp_imm(JmpOp.JEQ, fullsock, 0, jmp))
    if d == s:
        out.append(ldx_mem(Size.DW, reg, s, temp))
    out.append(_ldk(d, s, "sk"))
    if field is not None:
        out.append(ldx_mem(SIZE_OF_BYTES[field[1]], d, d, field[0]))
    if d == s:
        out += [ja(2), ldx_mem(Size.DW, reg, s, temp), mov64_imm(d, 0)]
    return out


def _sock_ops_set(si: Insn, field: tuple[int, int]) -> list[Insn]:
    """SOCK_OPS_SET_FIELD: store into the socket through a borrowed register, saved in temp
    (6.18: when ``is_locked_tcp_sock``; 6.12's source: ``is_fullsock``)."""
    d, s = si.dst, si.src
    reg = _scratch(si)
    temp = member(f"{_KERN}.temp")[0]
    return [stx_mem(Size.DW, d, reg, temp), _ldk(reg, d, "is_locked_tcp_sock"), jmp_imm(JmpOp.JEQ, reg, 0, 2),
            _ldk(reg, d, "sk"), Insn(SIZE_OF_BYTES[field[1]] | Mode.MEM | (si.code & CLASS_MASK), reg, s, field[0], si.imm),
            ldx_mem(Size.DW, reg, d, temp)]


def _ldk(dst: int, src: int, name: str) -> Insn:
    off, n = member(f"{_KERN}.{name}")
    return ldx_mem(SIZE_OF_BYTES[n], dst, src, off)


def _sock_common_field(table: dict[str, int], name: str | None, off: int, d: int, via_sk) -> list[Insn] | None:
    """The socket fields sock_ops and sk_msg_md both read from ``struct sock_common`` (`via_sk` loads
    through the context's socket pointer): family, addresses, ports; None for any other field."""
    if name == "family":
        return via_sk("sock_common.skc_family", Size.H)
    if name == "remote_ip4":
        return via_sk("sock_common.skc_daddr", Size.W)
    if name == "local_ip4":
        return via_sk("sock_common.skc_rcv_saddr", Size.W)
    for field, path in (("remote_ip6", "sock_common.skc_v6_daddr"), ("local_ip6", "sock_common.skc_v6_rcv_saddr")):
        if table[field] <= off < table[field] + 16:
            return via_sk(path, Size.W, off - table[field])
    if name == "remote_port":
        return via_sk("sock_common.skc_dport", Size.H) + [alu32_imm(AluOp.LSH, d, 16)]
    if name == "local_port":
        return via_sk("sock_common.skc_num", Size.H)
    return None


def convert_sock_ops(kind: str, si: Insn) -> tuple[list[Insn], int] | None:
    """sock_ops_convert_ctx_access."""
    d, s, off = si.dst, si.src, si.off
    name = {v: k for k, v in SOCK_OPS.items()}.get(off)

    def via_sk(path: str, size: Size, extra: int = 0) -> list[Insn]:
        return [_ldk(d, s, "sk"), ldx_mem(size, d, d, member(path)[0] + extra)]

    if name == "op":
        return [_ldk(d, s, "op")], 0
    if SOCK_OPS["replylong"] <= off < SOCK_OPS["replylong"] + 16:
        o = member(f"{_KERN}.replylong")[0] + off - SOCK_OPS["replylong"]
        return ([_store(si, Size.W, o)] if kind == WRITE else [ldx_mem(Size.W, d, s, o)]), 0
    if name == "sk_txhash":
        f = member("sock.sk_txhash")
        return (_sock_ops_set(si, f) if kind == WRITE else _sock_ops_get(si, f)), 0
    if kind == WRITE:
        return None
    common = _sock_common_field(SOCK_OPS, name, off, d, via_sk)
    if common is not None:
        return common, 0
    if name == "is_fullsock":
        return [_ldk(d, s, "is_fullsock")], 0
    if name == "state":
        return via_sk("sock_common.skc_state", Size.B), 0
    if name == "rtt_min":  # 6.18: straight through sk, no full-socket check (6.12's source: SOCK_OPS_GET_FIELD)
        return via_sk("tcp_sock.rtt_min", Size.W, member("minmax_sample.v")[0]), 0
    if name in _SOCK_OPS_TCP:
        return _sock_ops_get(si, member(f"tcp_sock.{name}")), 0
    if name == "sk":
        return _sock_ops_get(si, None), 0
    if name == "skb_data_end":
        return [_ldk(d, s, "skb_data_end")], 0
    if name in ("skb_data", "skb_len"):
        return [_ldk(d, s, "skb"), jmp_imm(JmpOp.JEQ, d, 0, 1),
                _ldx_sized(d, d, "sk_buff.data" if name == "skb_data" else "sk_buff.len")], 0
    if name == "skb_tcp_flags":
        o, n = member("tcp_skb_cb.tcp_flags")  # 6.18: a u16 (6.12: u8)
        return [_ldk(d, s, "skb"), jmp_imm(JmpOp.JEQ, d, 0, 1),
                ldx_mem(SIZE_OF_BYTES[n], d, d, member("sk_buff.cb")[0] + o)], n
    if name == "skb_hwtstamp":
        shinfo = [_ldx_sized(AX_REG, d, "sk_buff.end"), _ldx_sized(d, d, "sk_buff.head"), alu64_reg(AluOp.ADD, d, AX_REG)]
        return [_ldk(d, s, "skb"), jmp_imm(JmpOp.JEQ, d, 0, len(shinfo) + 1)] + shinfo + [
            ldx_mem(Size.DW, d, d, member("skb_shared_info.hwtstamps")[0])], 8
    return None


def _ldx_sized(dst: int, src: int, name: str) -> Insn:
    off, n = member(name)
    return ldx_mem(SIZE_OF_BYTES[n], dst, src, off)


# struct sk_msg_md (uapi).
SK_MSG = SK_MSG_MD.offsets()


def convert_sk_msg(kind: str, si: Insn) -> tuple[list[Insn], int] | None:
    """sk_msg_convert_ctx_access: struct sk_msg fields, the socket's through msg->sk."""
    d, s, off = si.dst, si.src, si.off
    if kind == WRITE:
        return None
    name = {v: k for k, v in SK_MSG.items()}.get(off)

    def via_sk(path: str, size: Size, extra: int = 0) -> list[Insn]:
        return [_ldx_sized(d, s, "sk_msg.sk"), ldx_mem(size, d, d, member(path)[0] + extra)]

    if name in ("data", "data_end", "sk"):
        return [_ldx_sized(d, s, f"sk_msg.{name}")], 0
    if name == "size":
        return [_ldx_sized(d, s, "sk_msg_sg.size")], 0
    common = _sock_common_field(SK_MSG, name, off, d, via_sk)
    return (common, 0) if common is not None else None


#: __sk_buff offsets a flow dissector program may read (the rest it may not touch).
FLOW_DISSECTOR = {SK_BUFF.by_name(name).offset: name for name in ("data", "data_end", "flow_keys")}


def convert_flow_dissector(kind: str, si: Insn) -> tuple[list[Insn], int] | None:
    """flow_dissector_convert_ctx_access: its __sk_buff is a struct bpf_flow_dissector."""
    name = FLOW_DISSECTOR.get(si.off)
    if kind == WRITE or name is None:
        return None
    return [_ldx_sized(si.dst, si.src, f"bpf_flow_dissector.{name}")], 0


# struct bpf_sockopt (uapi).
SOCKOPT = SOCKOPT_STRUCT.offsets()


def convert_sockopt(kind: str, si: Insn) -> tuple[list[Insn], int] | None:
    """cg_sockopt_convert_ctx_access (cgroup/getsockopt, setsockopt)."""
    d, s, off = si.dst, si.src, si.off
    name = {v: k for k, v in SOCKOPT.items()}.get(off)
    kern = "bpf_sockopt_kern"
    if name in ("sk", "optval", "optval_end") and kind == READ:
        return [_ldx_sized(d, s, f"{kern}.{name}")], 0
    if name in ("level", "optname", "optlen"):
        o, n = member(f"{kern}.{name}")
        return ([_store(si, SIZE_OF_BYTES[n], o)] if kind == WRITE else [ldx_mem(SIZE_OF_BYTES[n], d, s, o)]), 0
    if name != "retval":
        return None
    ret_off, ret_n = member("bpf_cg_run_ctx.retval")
    if kind == READ:
        return [_ldx_sized(d, s, f"{kern}.current_task"), _ldx_sized(d, d, "task_struct.bpf_ctx"),
                ldx_mem(SIZE_OF_BYTES[ret_n], d, d, ret_off)], 0
    treg = _scratch(si)
    tmp = member(f"{kern}.tmp_reg")[0]
    return [stx_mem(Size.DW, d, treg, tmp), _ldx_sized(treg, d, f"{kern}.current_task"),
            _ldx_sized(treg, treg, "task_struct.bpf_ctx"),
            Insn((si.code & CLASS_MASK) | Mode.MEM | SIZE_OF_BYTES[ret_n], treg, s, ret_off, si.imm),
            ldx_mem(Size.DW, treg, d, tmp)], 0


# struct sk_reuseport_md (uapi).
SK_REUSEPORT = SK_REUSEPORT_MD.offsets()
#: sk_reuseport_md fields read through a pointer of struct sk_reuseport_kern (SOCK_ADDR_LOAD_NESTED_FIELD).
_REUSEPORT_NESTED = {"data": ("skb", "sk_buff.data"), "len": ("skb", "sk_buff.len"),
                     "eth_protocol": ("skb", "sk_buff.protocol"), "ip_protocol": ("sk", "sock.sk_protocol")}


def convert_sk_reuseport(kind: str, si: Insn) -> tuple[list[Insn], int] | None:
    """sk_reuseport_convert_ctx_access."""
    name = {v: k for k, v in SK_REUSEPORT.items()}.get(si.off)
    if kind == WRITE or name is None:
        return None
    if name in _REUSEPORT_NESTED:
        ptr, path = _REUSEPORT_NESTED[name]
        off, n = member(path)
        return [_ldx_sized(si.dst, si.src, f"sk_reuseport_kern.{ptr}"), ldx_mem(SIZE_OF_BYTES[n], si.dst, si.dst, off)], n
    off, n = member(f"sk_reuseport_kern.{name}")
    return [ldx_mem(SIZE_OF_BYTES[n], si.dst, si.src, off)], n


# struct bpf_sysctl (uapi).
SYSCTL = SYSCTL_STRUCT.offsets()


def convert_sysctl(kind: str, si: Insn) -> tuple[list[Insn], int] | None:
    """sysctl_convert_ctx_access: write, and file_pos through the kernel's ppos pointer."""
    d, s = si.dst, si.src
    size = Size(si.code & SIZE_MASK)
    if si.off == SYSCTL["write"] and kind == READ:
        return [ldx_mem(size, d, s, member("bpf_sysctl_kern.write")[0])], 4
    if si.off != SYSCTL["file_pos"]:
        return None
    if kind == READ:
        return [_ldx_sized(d, s, "bpf_sysctl_kern.ppos"), ldx_mem(size, d, d, 0)], 4
    treg = _scratch(si)
    tmp = member("bpf_sysctl_kern.tmp_reg")[0]
    return [stx_mem(Size.DW, d, treg, tmp), _ldx_sized(treg, d, "bpf_sysctl_kern.ppos"),
            Insn((si.code & CLASS_MASK) | Mode.MEM | Size.W, treg, s, 0, si.imm), ldx_mem(Size.DW, treg, d, tmp)], 4


__all__ = ["BPF_SOCK", "SK_REUSEPORT", "SYSCTL", "convert_sk_reuseport", "convert_sysctl", "FLOW_DISSECTOR", "SK_MSG", "SOCKOPT", "SOCK_OPS", "convert_flow_dissector", "convert_sk_msg",
           "convert_sockopt", "bpf_sock_field_size", "convert_sock_ops", "BPF_TCP_SOCK", "BPF_XDP_SOCK", "convert_bpf_sock", "convert_tcp_sock", "convert_xdp_sock"]
