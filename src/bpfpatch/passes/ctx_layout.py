"""Kernel-internal structure layouts for context conversion (struct sk_buff, xdp_buff, ...).

The kernel lowers context accesses to loads from its own structures, whose
offsets change between builds.  They come from the running kernel's BTF: the
kernel / command-line layer installs a provider (`set_layout_provider`,
usually `layout_from_btf` over ``/sys/kernel/btf/vmlinux``; this layer may not
import the BTF reader).  Without one, `SHIPPED` is used: the layout of the
kernel these passes were checked against (Linux 6.18, x86-64).

A layout maps ``"struct.member"`` to ``(byte offset, size)``; bitfields the
kernel reads through a marker byte (``pkt_type``, ``tc_at_ingress``,
``tstamp_type``, ``cloned``) map ``"struct.member@bit"`` to their bit offset.
"""

from __future__ import annotations

from typing import Any, Callable

from bpfpatch.errors import PatchError

Layout = dict[str, tuple[int, int]]

#: The members the conversions use, per structure.
MEMBERS = {
    "sk_buff": ("len", "protocol", "vlan_proto", "priority", "skb_iif", "dev", "hash", "mark",
                "__pkt_type_offset", "queue_mapping", "vlan_all", "vlan_tci", "cb", "data", "tc_index",
                "napi_id", "sk", "tstamp", "end", "head", "__mono_tc_offset", "__cloned_offset", "data_len"),
    "sk_skb_cb": ("data", "temp_reg"),
    "net_device": ("ifindex",),
    "qdisc_skb_cb": ("data", "tc_classid", "pkt_len"),
    "bpf_skb_data_end": ("data_meta", "data_end"),
    "sock_common": ("skc_family", "skc_daddr", "skc_rcv_saddr", "skc_v6_daddr", "skc_v6_rcv_saddr",
                    "skc_dport", "skc_num", "skc_state", "skc_bound_dev_if",
                    "skc_rx_queue_mapping"),
    "skb_shared_info": ("gso_segs", "gso_size", "hwtstamps"),
    "xdp_buff": ("data", "data_meta", "data_end", "rxq", "txq"),
    "xdp_rxq_info": ("dev", "queue_index"),
    "xdp_txq_info": ("dev",),
    "bpf_sock_addr_kern": ("uaddr", "sk", "t_ctx", "tmp_reg"),
    "sockaddr": ("sa_family",),
    "sockaddr_in": ("sin_addr",),
    "sockaddr_in6": ("sin6_addr", "sin6_port"),
    "sock": ("__sk_common", "sk_type", "sk_protocol", "sk_mark", "sk_priority", "sk_txhash"),
    # sock_ops_convert_ctx_access
    "bpf_sock_ops_kern": ("sk", "replylong", "op", "is_fullsock", "is_locked_tcp_sock", "skb", "skb_data_end", "temp"),
    "tcp_skb_cb": ("tcp_flags",),
    # sk_msg_, flow_dissector_, cg_sockopt_convert_ctx_access
    "sk_msg": ("data", "data_end", "sk"),
    "sk_msg_sg": ("size",),
    "bpf_flow_dissector": ("data", "data_end", "flow_keys"),
    "bpf_sockopt_kern": ("sk", "optval", "optval_end", "level", "optname", "optlen", "current_task", "tmp_reg"),
    "task_struct": ("bpf_ctx",),
    "bpf_cg_run_ctx": ("retval",),
    # sk_reuseport_, sysctl_convert_ctx_access
    "sk_reuseport_kern": ("skb", "sk", "migrating_sk", "data_end", "hash", "bind_inany"),
    "bpf_sysctl_kern": ("write", "ppos", "tmp_reg"),
    # bpf_tcp_sock_convert_ctx_access, bpf_xdp_sock_convert_ctx_access
    "tcp_sock": ("snd_cwnd", "srtt_us", "rtt_min", "snd_ssthresh", "rcv_nxt", "snd_nxt", "snd_una", "mss_cache",
                 "ecn_flags", "rate_delivered", "rate_interval_us", "packets_out", "retrans_out", "total_retrans",
                 "segs_in", "data_segs_in", "segs_out", "data_segs_out", "lost_out", "sacked_out",
                 "bytes_received", "bytes_acked", "dsack_dups", "delivered", "delivered_ce", "bpf_sock_ops_cb_flags"),
    "minmax_sample": ("v",),
    "inet_connection_sock": ("icsk_retransmits",),
    "xdp_sock": ("queue_id",),
    "bpf_perf_event_data_kern": ("regs", "data"),
    "perf_sample_data": ("period", "addr"),
    "bpf_sk_lookup_kern": ("family", "protocol", "v4.saddr", "v4.daddr", "v6.saddr", "v6.daddr", "sport", "dport",
                           "ingress_ifindex", "selected_sk"),
    # map_gen_lookup (kernel/bpf/arraymap.c, hashtab.c)
    "bpf_array": ("value",),
    "htab_elem": ("key", "lru_node"),
    "bpf_lru_node": ("ref",),
    "xsk_map": ("xsk_map",),
}
BITS = {"sk_buff": ("pkt_type", "tc_at_ingress", "tstamp_type", "cloned")}

#: Linux 6.18 x86-64 (this project's machines), from /sys/kernel/btf/vmlinux by `layout_from_btf`.
SHIPPED: Layout = {
    'sk_buff.len': (112, 4), 'sk_buff.protocol': (176, 2), 'sk_buff.vlan_proto': (152, 2),
    'sk_buff.priority': (140, 4), 'sk_buff.skb_iif': (144, 4), 'sk_buff.dev': (16, 8),
    'sk_buff.hash': (148, 4), 'sk_buff.mark': (164, 4), 'sk_buff.__pkt_type_offset': (128, 0),
    'sk_buff.queue_mapping': (124, 2), 'sk_buff.vlan_all': (152, 4), 'sk_buff.vlan_tci': (154, 2),
    'sk_buff.cb': (40, 48), 'sk_buff.data': (200, 8), 'sk_buff.tc_index': (132, 2),
    'sk_buff.napi_id': (156, 4), 'sk_buff.sk': (24, 8), 'sk_buff.tstamp': (32, 8), 'sk_buff.end': (188, 4),
    'sk_buff.head': (192, 8), 'sk_buff.__mono_tc_offset': (129, 0), 'sk_buff.__cloned_offset': (126, 0),
    'sk_buff.data_len': (116, 4), 'sk_skb_cb.data': (0, 20), 'sk_skb_cb.temp_reg': (40, 8),
    'net_device.ifindex': (224, 4), 'qdisc_skb_cb.data': (8, 20), 'qdisc_skb_cb.tc_classid': (6, 2),
    'qdisc_skb_cb.pkt_len': (0, 4), 'bpf_skb_data_end.data_meta': (32, 8),
    'bpf_skb_data_end.data_end': (40, 8), 'sock_common.skc_family': (16, 2), 'sock_common.skc_daddr': (0, 4),
    'sock_common.skc_rcv_saddr': (4, 4), 'sock_common.skc_v6_daddr': (56, 16),
    'sock_common.skc_v6_rcv_saddr': (72, 16), 'sock_common.skc_dport': (12, 2), 'sock_common.skc_num': (14, 2),
    'skb_shared_info.gso_segs': (6, 2), 'skb_shared_info.gso_size': (4, 2),
    'skb_shared_info.hwtstamps': (16, 8), 'xdp_buff.data': (0, 8), 'xdp_buff.data_meta': (16, 8),
    'xdp_buff.data_end': (8, 8), 'xdp_buff.rxq': (32, 8), 'xdp_buff.txq': (40, 8), 'xdp_rxq_info.dev': (0, 8),
    'xdp_rxq_info.queue_index': (8, 4), 'xdp_txq_info.dev': (0, 8), 'bpf_sock_addr_kern.uaddr': (8, 8),
    'bpf_sock_addr_kern.sk': (0, 8), 'bpf_sock_addr_kern.t_ctx': (24, 8),
    'bpf_sock_addr_kern.tmp_reg': (16, 8), 'sockaddr.sa_family': (0, 2), 'sockaddr_in.sin_addr': (4, 4),
    'sockaddr_in6.sin6_addr': (8, 16), 'sockaddr_in6.sin6_port': (2, 2), 'sock.__sk_common': (0, 136),
    'sock.sk_type': (534, 2), 'sock.sk_protocol': (532, 2), 'bpf_perf_event_data_kern.regs': (0, 8),
    'bpf_perf_event_data_kern.data': (8, 8), 'perf_sample_data.period': (8, 8),
    'perf_sample_data.addr': (184, 8), 'bpf_sk_lookup_kern.family': (0, 2),
    'bpf_sk_lookup_kern.protocol': (2, 2), 'bpf_sk_lookup_kern.v4.saddr': (8, 4),
    'bpf_sk_lookup_kern.v4.daddr': (12, 4), 'bpf_sk_lookup_kern.v6.saddr': (16, 8),
    'bpf_sk_lookup_kern.v6.daddr': (24, 8), 'bpf_sk_lookup_kern.sport': (4, 2),
    'bpf_sk_lookup_kern.dport': (6, 2), 'bpf_sk_lookup_kern.ingress_ifindex': (40, 4),
    'bpf_sk_lookup_kern.selected_sk': (32, 8), 'sk_buff.pkt_type@bit': (1024, 3),
    'sk_buff.tc_at_ingress@bit': (1034, 1), 'sk_buff.tstamp_type@bit': (1032, 2),
    'sk_buff.cloned@bit': (1008, 1),
    'bpf_array.value': (312, 0), 'htab_elem.key': (48, 0), 'htab_elem.lru_node': (16, 24),
    'bpf_lru_node.ref': (19, 1), 'xsk_map.xsk_map': (304, 0),
    'inet_connection_sock.icsk_retransmits': (1249, 1), 'minmax_sample.v': (4, 4), 'sock.sk_mark': (524, 4),
    'sock.sk_priority': (520, 4), 'sock_common.skc_bound_dev_if': (20, 4),
    'sock_common.skc_rx_queue_mapping': (122, 2), 'sock_common.skc_state': (18, 1),
    'tcp_sock.bytes_acked': (1824, 8), 'tcp_sock.bytes_received': (1752, 8), 'tcp_sock.data_segs_in': (1764, 4),
    'tcp_sock.data_segs_out': (1540, 4), 'tcp_sock.delivered': (1692, 4), 'tcp_sock.delivered_ce': (1696, 4),
    'tcp_sock.dsack_dups': (1864, 4), 'tcp_sock.ecn_flags': (1640, 1), 'tcp_sock.lost_out': (1452, 4),
    'tcp_sock.mss_cache': (1440, 4), 'tcp_sock.packets_out': (1684, 4), 'tcp_sock.rate_delivered': (1780, 4),
    'tcp_sock.rate_interval_us': (1784, 4), 'tcp_sock.rcv_nxt': (1664, 4), 'tcp_sock.retrans_out': (1480, 4),
    'tcp_sock.rtt_min': (1496, 24), 'tcp_sock.sacked_out': (1456, 4), 'tcp_sock.segs_in': (1760, 4),
    'tcp_sock.segs_out': (1536, 4), 'tcp_sock.snd_cwnd': (1444, 4), 'tcp_sock.snd_nxt': (1668, 4),
    'tcp_sock.snd_ssthresh': (1492, 4), 'tcp_sock.snd_una': (1672, 4), 'tcp_sock.srtt_us': (1680, 4),
    'tcp_sock.total_retrans': (2200, 4), 'xdp_sock.queue_id': (880, 2),
    'bpf_sock_ops_kern.is_fullsock': (49, 1), 'bpf_sock_ops_kern.is_locked_tcp_sock': (50, 1), 'bpf_sock_ops_kern.op': (48, 1),
    'bpf_sock_ops_kern.replylong': (8, 16), 'bpf_sock_ops_kern.sk': (0, 8), 'bpf_sock_ops_kern.skb': (32, 8),
    'bpf_sock_ops_kern.skb_data_end': (40, 8), 'bpf_sock_ops_kern.temp': (56, 8), 'sock.sk_txhash': (564, 4),
    'tcp_skb_cb.tcp_flags': (12, 2), 'tcp_sock.bpf_sock_ops_cb_flags': (2232, 1),
    'bpf_cg_run_ctx.retval': (8, 4), 'bpf_flow_dissector.data': (16, 8), 'bpf_flow_dissector.data_end': (24, 8),
    'bpf_flow_dissector.flow_keys': (0, 8), 'bpf_sockopt_kern.current_task': (40, 8),
    'bpf_sockopt_kern.level': (24, 4), 'bpf_sockopt_kern.optlen': (32, 4), 'bpf_sockopt_kern.optname': (28, 4),
    'bpf_sockopt_kern.optval': (8, 8), 'bpf_sockopt_kern.optval_end': (16, 8), 'bpf_sockopt_kern.sk': (0, 8),
    'bpf_sockopt_kern.tmp_reg': (48, 8), 'sk_msg.data': (640, 8), 'sk_msg.data_end': (648, 8),
    'sk_msg.sk': (688, 8), 'sk_msg_sg.size': (12, 4), 'task_struct.bpf_ctx': (3008, 8),
    'bpf_sysctl_kern.ppos': (56, 8), 'bpf_sysctl_kern.tmp_reg': (64, 8), 'bpf_sysctl_kern.write': (52, 4),
    'sk_reuseport_kern.bind_inany': (48, 1), 'sk_reuseport_kern.data_end': (32, 8),
    'sk_reuseport_kern.hash': (40, 4), 'sk_reuseport_kern.migrating_sk': (24, 8), 'sk_reuseport_kern.sk': (8, 8),
    'sk_reuseport_kern.skb': (0, 8),
}

_provider: Callable[[], Layout] | None = None
_cache: Layout | None = None


def set_layout_provider(provider: Callable[[], Layout] | None) -> None:
    """Install the function that reads the running kernel's layout (None: the shipped table)."""
    global _provider, _cache
    _provider, _cache = provider, None


def layout() -> Layout:
    """The layout in force: the provider's (read once), else `SHIPPED`."""
    global _cache
    if _cache is None:
        _cache = SHIPPED
        if _provider is not None:
            try:
                got = _provider()
            except Exception:  # noqa: BLE001 - no BTF here: the shipped table it is
                got = None
            if got:
                _cache = {**SHIPPED, **got}
    return _cache


def member(name: str) -> tuple[int, int]:
    """``(offset, size)`` of ``"struct.member"`` in the layout in force."""
    try:
        return layout()[name]
    except KeyError:
        raise PatchError(f"kernel: no layout for {name} (the kernel's BTF lacks it)") from None


def layout_from_btf(btf: Any) -> Layout:
    """The layout from a parsed BTF (a `bpfpatch.btf.Btf`: ``types``, ``member``, ``resolve``)."""
    wanted = set(MEMBERS) | set(BITS)
    structs = {t.name: t for t in btf.types if t.name in wanted and getattr(t.kind, "name", "") == "STRUCT"}
    out: Layout = {}
    for struct_name, names in MEMBERS.items():
        t = structs.get(struct_name)
        for m in names if t is not None else ():
            found = _path(btf, t.id, m)
            if found is not None:
                out[f"{struct_name}.{m}"] = found
    for struct_name, names in BITS.items():
        t = structs.get(struct_name)
        for m in names if t is not None else ():
            bit = _bit_offset(btf, t.id, m)
            if bit is not None:
                out[f"{struct_name}.{m}@bit"] = bit
    return out


def _find(btf: Any, type_id: int, name: str) -> tuple[int, int] | None:
    """(bit offset, type id) of a member, looking inside anonymous structs and unions."""
    stack = [(btf.resolve(type_id), 0)]
    while stack:
        t, base = stack.pop(0)
        nested = []
        for mname, mtype, bits in t.members or ():
            if mname == name:
                return base + bits, mtype
            inner = btf.resolve(mtype)
            if not mname and getattr(inner, "members", None):
                nested.append((inner, base + bits))
        stack[:0] = nested
    return None


def _path(btf: Any, struct_id: int, path: str) -> tuple[int, int] | None:
    """(byte offset, size) of a dotted member path (``v4.saddr``)."""
    bits, tid = 0, struct_id
    for name in path.split("."):
        found = _find(btf, tid, name)
        if found is None:
            return None
        bits, tid = bits + found[0], found[1]
    return bits // 8, int(btf.size_of(tid))


def _bit_offset(btf: Any, struct_id: int, name: str) -> tuple[int, int] | None:
    """(bit offset, width) of a member, looking inside anonymous structs and unions."""
    stack = [(btf.resolve(struct_id), 0)]
    while stack:
        t, base = stack.pop(0)
        members = list(t.members)
        for k, (mname, mtype, bits) in enumerate(members):
            if mname == name:
                nxt = members[k + 1][2] if k + 1 < len(members) else bits + 1
                return base + bits, max(1, nxt - bits) if nxt > bits else 1
            inner = btf.resolve(mtype)
            if not mname and getattr(inner, "members", None):
                stack.append((inner, base + bits))
    return None
