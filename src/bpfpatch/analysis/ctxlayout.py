"""Context layouts per program type: what a load from the context pointer gives.

The kernel's ``is_valid_access`` callbacks (net/core/filter.c,
kernel/trace/bpf_trace.c) decide, per program type, which context offsets may
be read or written and which of them hold pointers (``data`` ->
PTR_TO_PACKET, ``data_end`` -> PTR_TO_PACKET_END, ``sk`` -> a socket ...).
`CtxLayout` is that decision as data: the struct's size, its fields (name,
offset, size), and the pointer fields.  The shipped table is the uapi layout
(offsets as in include/uapi/linux/bpf.h, checked against this machine's
vmlinux BTF); a caller that can read the running kernel's BTF passes its own
`CtxLayout` (the analysis imports nothing from `kernel` or `btf`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bpfpatch.analysis.facts import RegType
from bpfpatch.progtype import ProgType


@dataclass(frozen=True)
class CtxField:
    """One context field: its name, byte offset and size (the unit a narrow load reads part of)."""

    name: str
    offset: int
    size: int


@dataclass(frozen=True)
class CtxLayout:
    """The context of one program type as the verifier sees it.

    ``pointers`` maps a field offset to (the register type a full-width load
    gives, the load size required); ``readonly`` lists offsets that may not be
    written; ``writable`` (when not None) the only offsets that may be; ``denied``
    offsets this program type may not access at all.  ``size == 0`` means "any
    size" (tracepoint contexts are a buffer of the tracepoint's own layout).
    """

    struct: str
    size: int
    fields: tuple[CtxField, ...] = ()
    pointers: dict[int, tuple[RegType, int]] = field(default_factory=dict)
    denied: frozenset[int] = frozenset()
    writable: frozenset[int] | None = None

    def field_at(self, off: int) -> CtxField | None:
        """The field holding byte `off`."""
        for f in self.fields:
            if f.offset <= off < f.offset + f.size:
                return f
        return None


def _fields(*rows: tuple[str, int, int]) -> tuple[CtxField, ...]:
    return tuple(CtxField(n, o, s) for n, o, s in rows)


def _u32s(names: str, start: int = 0) -> list[tuple[str, int, int]]:
    return [(n, start + 4 * i, 4) for i, n in enumerate(names.split())]


_SKB_FIELDS = _fields(
    *_u32s("len pkt_type mark queue_mapping protocol vlan_present vlan_tci vlan_proto priority ingress_ifindex "
           "ifindex tc_index"),
    *[(f"cb[{i}]", 48 + 4 * i, 4) for i in range(5)],
    *_u32s("hash tc_classid data data_end napi_id family remote_ip4 local_ip4", 68),
    *[(f"remote_ip6[{i}]", 100 + 4 * i, 4) for i in range(4)],
    *[(f"local_ip6[{i}]", 116 + 4 * i, 4) for i in range(4)],
    ("remote_port", 132, 4), ("local_port", 136, 4), ("data_meta", 140, 4), ("flow_keys", 144, 8),
    ("tstamp", 152, 8), ("wire_len", 160, 4), ("gso_segs", 164, 4), ("sk", 168, 8), ("gso_size", 176, 4),
    ("tstamp_type", 180, 1), ("hwtstamp", 184, 8),
)
SKB_DATA, SKB_DATA_END, SKB_DATA_META, SKB_FLOW_KEYS, SKB_SK = 76, 80, 140, 144, 168
_SKB_PKT = {SKB_DATA: (RegType.PTR_TO_PACKET, 4), SKB_DATA_END: (RegType.PTR_TO_PACKET_END, 4)}

# Fields a socket filter may not touch (sk_filter_is_valid_access).
_SKB_FILTER_DENIED = frozenset({72, SKB_DATA, SKB_DATA_END, SKB_DATA_META, SKB_FLOW_KEYS, 152, 184})

XDP_MD = CtxLayout("xdp_md", 24, _fields(*_u32s("data data_end data_meta ingress_ifindex rx_queue_index egress_ifindex")),
                   {0: (RegType.PTR_TO_PACKET, 4), 4: (RegType.PTR_TO_PACKET_END, 4), 8: (RegType.PTR_TO_PACKET_META, 4)},
                   writable=frozenset())

_SK_PTR = (RegType.PTR_TO_SOCK_COMMON_OR_NULL, 8)


def _skb(pointers: dict[int, tuple[RegType, int]], denied: frozenset[int] = frozenset()) -> CtxLayout:
    return CtxLayout("__sk_buff", 192, _SKB_FIELDS, pointers, denied)


BPF_SOCK = CtxLayout("bpf_sock", 80, _fields(
    *_u32s("bound_dev_if family type protocol mark priority src_ip4"), *[(f"src_ip6[{i}]", 28 + 4 * i, 4) for i in range(4)],
    ("src_port", 44, 4), ("dst_port", 48, 2), ("dst_ip4", 52, 4), *[(f"dst_ip6[{i}]", 56 + 4 * i, 4) for i in range(4)],
    ("state", 72, 4), ("rx_queue_mapping", 76, 4)))

BPF_SOCK_ADDR = CtxLayout("bpf_sock_addr", 72, _fields(
    ("user_family", 0, 4), ("user_ip4", 4, 4), *[(f"user_ip6[{i}]", 8 + 4 * i, 4) for i in range(4)],
    ("user_port", 24, 4), ("family", 28, 4), ("type", 32, 4), ("protocol", 36, 4), ("msg_src_ip4", 40, 4),
    *[(f"msg_src_ip6[{i}]", 44 + 4 * i, 4) for i in range(4)], ("sk", 64, 8)),
    {64: (RegType.PTR_TO_SOCKET, 8)})

_SOCK_OPS_U32 = ("op reply_0 reply_1 reply_2 reply_3 family remote_ip4 local_ip4 remote_ip6_0 remote_ip6_1 remote_ip6_2 "
                 "remote_ip6_3 local_ip6_0 local_ip6_1 local_ip6_2 local_ip6_3 remote_port local_port is_fullsock "
                 "snd_cwnd srtt_us bpf_sock_ops_cb_flags state rtt_min snd_ssthresh rcv_nxt snd_nxt snd_una "
                 "mss_cache ecn_flags rate_delivered rate_interval_us packets_out retrans_out total_retrans segs_in "
                 "data_segs_in segs_out data_segs_out lost_out sacked_out sk_txhash")
BPF_SOCK_OPS = CtxLayout("bpf_sock_ops", 224, _fields(
    *_u32s(_SOCK_OPS_U32), ("bytes_received", 168, 8), ("bytes_acked", 176, 8), ("sk", 184, 8),
    ("skb_data", 192, 8), ("skb_data_end", 200, 8), ("skb_len", 208, 4), ("skb_tcp_flags", 212, 4),
    ("skb_hwtstamp", 216, 8)),
    {184: (RegType.PTR_TO_SOCKET_OR_NULL, 8), 192: (RegType.PTR_TO_PACKET, 8), 200: (RegType.PTR_TO_PACKET_END, 8)})

PT_REGS = CtxLayout("pt_regs", 168, _fields(*[(n, 8 * i, 8) for i, n in enumerate(
    "r15 r14 r13 r12 bp bx r11 r10 r9 r8 ax cx dx si di orig_ax ip cs flags sp ss".split())]))

SK_MSG_MD = CtxLayout("sk_msg_md", 80, _fields(
    ("data", 0, 8), ("data_end", 8, 8), *_u32s("family remote_ip4 local_ip4", 16),
    *[(f"remote_ip6[{i}]", 28 + 4 * i, 4) for i in range(4)], *[(f"local_ip6[{i}]", 44 + 4 * i, 4) for i in range(4)],
    ("remote_port", 60, 4), ("local_port", 64, 4), ("size", 68, 4), ("sk", 72, 8)),
    {0: (RegType.PTR_TO_PACKET, 8), 8: (RegType.PTR_TO_PACKET_END, 8), 72: (RegType.PTR_TO_SOCKET, 8)})

SK_REUSEPORT_MD = CtxLayout("sk_reuseport_md", 56, _fields(
    ("data", 0, 8), ("data_end", 8, 8), *_u32s("len eth_protocol ip_protocol bind_inany hash", 16), ("sk", 40, 8),
    ("migrating_sk", 48, 8)),
    {0: (RegType.PTR_TO_PACKET, 8), 8: (RegType.PTR_TO_PACKET_END, 8), 40: (RegType.PTR_TO_SOCKET, 8),
     48: (RegType.PTR_TO_SOCK_COMMON_OR_NULL, 8)})

BPF_SK_LOOKUP = CtxLayout("bpf_sk_lookup", 72, _fields(
    ("sk", 0, 8), ("family", 8, 4), ("protocol", 12, 4), ("remote_ip4", 16, 4),
    *[(f"remote_ip6[{i}]", 20 + 4 * i, 4) for i in range(4)], ("remote_port", 36, 2), ("local_ip4", 40, 4),
    *[(f"local_ip6[{i}]", 44 + 4 * i, 4) for i in range(4)], ("local_port", 60, 4), ("ingress_ifindex", 64, 4)),
    {0: (RegType.PTR_TO_SOCK_COMMON_OR_NULL, 8)})

CGROUP_DEV = CtxLayout("bpf_cgroup_dev_ctx", 12, _fields(*_u32s("access_type major minor")))
SYSCTL = CtxLayout("bpf_sysctl", 8, _fields(*_u32s("write file_pos")))
SOCKOPT = CtxLayout("bpf_sockopt", 40, _fields(("sk", 0, 8), ("optval", 8, 8), ("optval_end", 16, 8),
                                                *_u32s("level optname optlen retval", 24)),
                    {0: (RegType.PTR_TO_SOCKET, 8), 8: (RegType.PTR_TO_PACKET, 8), 16: (RegType.PTR_TO_PACKET_END, 8)})
ANY = CtxLayout("ctx", 0)

UAPI_LAYOUTS: dict[ProgType, CtxLayout] = {
    ProgType.SOCKET_FILTER: _skb({}, _SKB_FILTER_DENIED),
    ProgType.SCHED_CLS: _skb({**_SKB_PKT, SKB_DATA_META: (RegType.PTR_TO_PACKET_META, 4), SKB_SK: _SK_PTR}),
    ProgType.SCHED_ACT: _skb({**_SKB_PKT, SKB_DATA_META: (RegType.PTR_TO_PACKET_META, 4), SKB_SK: _SK_PTR}),
    ProgType.CGROUP_SKB: _skb({**_SKB_PKT, SKB_SK: _SK_PTR}),
    ProgType.LWT_IN: _skb(_SKB_PKT), ProgType.LWT_OUT: _skb(_SKB_PKT), ProgType.LWT_XMIT: _skb(_SKB_PKT),
    ProgType.LWT_SEG6LOCAL: _skb(_SKB_PKT),
    ProgType.SK_SKB: _skb({**_SKB_PKT, SKB_SK: _SK_PTR}),
    ProgType.FLOW_DISSECTOR: _skb({**_SKB_PKT, SKB_FLOW_KEYS: (RegType.PTR_TO_FLOW_KEYS, 8)}),
    ProgType.XDP: XDP_MD,
    ProgType.CGROUP_SOCK: BPF_SOCK,
    ProgType.CGROUP_SOCK_ADDR: BPF_SOCK_ADDR,
    ProgType.SOCK_OPS: BPF_SOCK_OPS,
    ProgType.KPROBE: PT_REGS,
    ProgType.PERF_EVENT: CtxLayout("bpf_perf_event_data", 184, PT_REGS.fields + _fields(("sample_period", 168, 8), ("addr", 176, 8))),
    ProgType.SK_MSG: SK_MSG_MD,
    ProgType.SK_REUSEPORT: SK_REUSEPORT_MD,
    ProgType.SK_LOOKUP: BPF_SK_LOOKUP,
    ProgType.CGROUP_DEVICE: CGROUP_DEV,
    ProgType.CGROUP_SYSCTL: SYSCTL,
    ProgType.CGROUP_SOCKOPT: SOCKOPT,
}


def uapi_layout(prog_type: ProgType) -> CtxLayout:
    """The shipped layout of `prog_type`'s context (``ANY`` for types with a free-form context)."""
    return UAPI_LAYOUTS.get(prog_type, ANY)


__all__ = ["CtxField", "CtxLayout", "UAPI_LAYOUTS", "uapi_layout", "XDP_MD"]
