"""The uapi context structures as tables: each one's name, size and fields.

One table for every layer that reads a program's context: the analysis
(`bpfpatch.analysis.ctxlayout` adds which fields hold pointers and which may
be written, as the verifier's ``is_valid_access`` decides), and the kernel
layer's test runs (`bpfpatch.kernel.ctxlayout` adds what ``ctx_in`` accepts and
``ctx_out`` reports).  Offsets as in include/uapi/linux/bpf.h (checked against
this machine's vmlinux BTF); an array member is one field per element
(``cb[0]`` .. ``cb[4]``), the unit a narrow load reads part of::

    >>> SK_BUFF.by_name("data").offset, SK_BUFF.field_at(50).name
    (76, 'cb[0]')
    >>> CTX_STRUCTS[ProgType.XDP] is XDP_MD
    True
"""

from __future__ import annotations

from dataclasses import dataclass

from bpfpatch.progtype import ProgType


@dataclass(frozen=True)
class CtxField:
    """One context field: its name, byte offset and size (the unit a narrow load reads part of)."""

    name: str
    offset: int
    size: int


class FieldTable:
    """Lookups over a ``fields`` tuple of `CtxField` (the structures here, and the layouts built on them)."""

    fields: tuple[CtxField, ...]

    def field_at(self, off: int) -> CtxField | None:
        """The field holding byte `off`, or None."""
        for f in self.fields:
            if f.offset <= off < f.offset + f.size:
                return f
        return None

    def by_name(self, name: str) -> CtxField:
        """The field called `name` (KeyError if there is none)."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


@dataclass(frozen=True)
class CtxStruct(FieldTable):
    """One context structure: its C name, size in bytes and fields in offset order."""

    name: str
    size: int
    fields: tuple[CtxField, ...] = ()

    def offsets(self) -> dict[str, int]:
        """Member name -> byte offset, an array as one member (``cb``: where ``cb[0]`` is), in offset order."""
        out: dict[str, int] = {}
        for f in self.fields:
            out.setdefault(f.name.partition("[")[0], f.offset)
        return out


def fields(*rows: tuple[str, int, int]) -> tuple[CtxField, ...]:
    """Fields from (name, offset, size) rows."""
    return tuple(CtxField(n, o, s) for n, o, s in rows)


def _u32s(names: str, start: int = 0) -> list[tuple[str, int, int]]:
    return [(n, start + 4 * i, 4) for i, n in enumerate(names.split())]


def _array(name: str, start: int, count: int, size: int = 4) -> list[tuple[str, int, int]]:
    return [(f"{name}[{i}]", start + size * i, size) for i in range(count)]


SK_BUFF = CtxStruct("__sk_buff", 192, fields(
    *_u32s("len pkt_type mark queue_mapping protocol vlan_present vlan_tci vlan_proto priority ingress_ifindex "
           "ifindex tc_index"),
    *_array("cb", 48, 5),
    *_u32s("hash tc_classid data data_end napi_id family remote_ip4 local_ip4", 68),
    *_array("remote_ip6", 100, 4), *_array("local_ip6", 116, 4),
    ("remote_port", 132, 4), ("local_port", 136, 4), ("data_meta", 140, 4), ("flow_keys", 144, 8),
    ("tstamp", 152, 8), ("wire_len", 160, 4), ("gso_segs", 164, 4), ("sk", 168, 8), ("gso_size", 176, 4),
    ("tstamp_type", 180, 1), ("hwtstamp", 184, 8),
))

XDP_MD = CtxStruct("xdp_md", 24, fields(*_u32s("data data_end data_meta ingress_ifindex rx_queue_index egress_ifindex")))

BPF_SOCK = CtxStruct("bpf_sock", 80, fields(
    *_u32s("bound_dev_if family type protocol mark priority src_ip4"), *_array("src_ip6", 28, 4),
    ("src_port", 44, 4), ("dst_port", 48, 2), ("dst_ip4", 52, 4), *_array("dst_ip6", 56, 4),
    ("state", 72, 4), ("rx_queue_mapping", 76, 4)))

BPF_SOCK_ADDR = CtxStruct("bpf_sock_addr", 72, fields(
    ("user_family", 0, 4), ("user_ip4", 4, 4), *_array("user_ip6", 8, 4),
    ("user_port", 24, 4), ("family", 28, 4), ("type", 32, 4), ("protocol", 36, 4), ("msg_src_ip4", 40, 4),
    *_array("msg_src_ip6", 44, 4), ("sk", 64, 8)))

# The union of args[4], reply and replylong[4] as replylong (the kernel's convert_ctx_access names it so).
_SOCK_OPS_TCP_U32 = ("is_fullsock snd_cwnd srtt_us bpf_sock_ops_cb_flags state rtt_min snd_ssthresh rcv_nxt snd_nxt "
                     "snd_una mss_cache ecn_flags rate_delivered rate_interval_us packets_out retrans_out total_retrans "
                     "segs_in data_segs_in segs_out data_segs_out lost_out sacked_out sk_txhash")
BPF_SOCK_OPS = CtxStruct("bpf_sock_ops", 224, fields(
    ("op", 0, 4), *_array("replylong", 4, 4), *_u32s("family remote_ip4 local_ip4", 20), *_array("remote_ip6", 32, 4),
    *_array("local_ip6", 48, 4), ("remote_port", 64, 4), ("local_port", 68, 4), *_u32s(_SOCK_OPS_TCP_U32, 72),
    ("bytes_received", 168, 8), ("bytes_acked", 176, 8), ("sk", 184, 8),
    ("skb_data", 192, 8), ("skb_data_end", 200, 8), ("skb_len", 208, 4), ("skb_tcp_flags", 212, 4),
    ("skb_hwtstamp", 216, 8)))

PT_REGS = CtxStruct("pt_regs", 168, fields(*[(n, 8 * i, 8) for i, n in enumerate(
    "r15 r14 r13 r12 bp bx r11 r10 r9 r8 ax cx dx si di orig_ax ip cs flags sp ss".split())]))

PERF_EVENT_DATA = CtxStruct("bpf_perf_event_data", 184,
                            PT_REGS.fields + fields(("sample_period", 168, 8), ("addr", 176, 8)))

SK_MSG_MD = CtxStruct("sk_msg_md", 80, fields(
    ("data", 0, 8), ("data_end", 8, 8), *_u32s("family remote_ip4 local_ip4", 16),
    *_array("remote_ip6", 28, 4), *_array("local_ip6", 44, 4),
    ("remote_port", 60, 4), ("local_port", 64, 4), ("size", 68, 4), ("sk", 72, 8)))

SK_REUSEPORT_MD = CtxStruct("sk_reuseport_md", 56, fields(
    ("data", 0, 8), ("data_end", 8, 8), *_u32s("len eth_protocol ip_protocol bind_inany hash", 16), ("sk", 40, 8),
    ("migrating_sk", 48, 8)))

BPF_SK_LOOKUP = CtxStruct("bpf_sk_lookup", 72, fields(
    ("sk", 0, 8), ("family", 8, 4), ("protocol", 12, 4), ("remote_ip4", 16, 4),
    *_array("remote_ip6", 20, 4), ("remote_port", 36, 2), ("local_ip4", 40, 4),
    *_array("local_ip6", 44, 4), ("local_port", 60, 4), ("ingress_ifindex", 64, 4)))

CGROUP_DEV_CTX = CtxStruct("bpf_cgroup_dev_ctx", 12, fields(*_u32s("access_type major minor")))
SYSCTL = CtxStruct("bpf_sysctl", 8, fields(*_u32s("write file_pos")))
SOCKOPT = CtxStruct("bpf_sockopt", 40, fields(("sk", 0, 8), ("optval", 8, 8), ("optval_end", 16, 8),
                                              *_u32s("level optname optlen retval", 24)))

#: struct bpf_flow_keys (what a flow dissector fills; a test run returns it in data_out). ipv4/ipv6 share a union.
FLOW_KEYS = CtxStruct("bpf_flow_keys", 56, fields(
    ("nhoff", 0, 2), ("thoff", 2, 2), ("addr_proto", 4, 2), ("is_frag", 6, 1), ("is_first_frag", 7, 1),
    ("is_encap", 8, 1), ("ip_proto", 9, 1), ("n_proto", 10, 2), ("sport", 12, 2), ("dport", 14, 2),
    ("ipv4_src", 16, 4), ("ipv4_dst", 20, 4), ("ipv6_src", 16, 16), ("ipv6_dst", 32, 16), ("flags", 48, 4),
    ("flow_label", 52, 4)))

#: The context structure a program of each type gets in r1 (types with a free-form context are absent).
CTX_STRUCTS: dict[ProgType, CtxStruct] = {
    **{t: SK_BUFF for t in (ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.SCHED_ACT, ProgType.CGROUP_SKB,
                            ProgType.LWT_IN, ProgType.LWT_OUT, ProgType.LWT_XMIT, ProgType.LWT_SEG6LOCAL,
                            ProgType.SK_SKB, ProgType.FLOW_DISSECTOR)},
    ProgType.XDP: XDP_MD,
    ProgType.CGROUP_SOCK: BPF_SOCK,
    ProgType.CGROUP_SOCK_ADDR: BPF_SOCK_ADDR,
    ProgType.SOCK_OPS: BPF_SOCK_OPS,
    ProgType.KPROBE: PT_REGS,
    ProgType.PERF_EVENT: PERF_EVENT_DATA,
    ProgType.SK_MSG: SK_MSG_MD,
    ProgType.SK_REUSEPORT: SK_REUSEPORT_MD,
    ProgType.SK_LOOKUP: BPF_SK_LOOKUP,
    ProgType.CGROUP_DEVICE: CGROUP_DEV_CTX,
    ProgType.CGROUP_SYSCTL: SYSCTL,
    ProgType.CGROUP_SOCKOPT: SOCKOPT,
}

__all__ = ["BPF_SK_LOOKUP", "BPF_SOCK", "BPF_SOCK_ADDR", "BPF_SOCK_OPS", "CGROUP_DEV_CTX", "CTX_STRUCTS", "CtxField",
           "CtxStruct", "FLOW_KEYS", "FieldTable", "PERF_EVENT_DATA", "PT_REGS", "SK_BUFF", "SK_MSG_MD", "SK_REUSEPORT_MD", "SOCKOPT",
           "SYSCTL", "XDP_MD", "fields"]
