"""What BPF_PROG_TEST_RUN takes and gives back, per program type (measured on Linux 6.18).

For each runnable type: how the input is passed (packet data, a context
structure, or both), which context fields a test run accepts in ``ctx_in``
(`settable`), which come back in ``ctx_out`` (`reported`), and what the kernel
does *not* report, so that `check` can say so instead of implying it looked.

Measured here with a tc program that writes every writable ``__sk_buff``
field: ``ctx_out`` carries mark, priority, ifindex, cb[0..4], tstamp,
wire_len, gso_segs, gso_size and hwtstamp; queue_mapping, tc_index and
tc_classid are written by programs but never come back.  ``ctx_in`` accepts
only mark, priority, ingress_ifindex, ifindex, cb[], tstamp, gso_segs,
gso_size and hwtstamp (anything else non-zero is EINVAL).  ``xdp_md`` comes
back whole (data, data_end, data_meta, ingress_ifindex, rx_queue_index,
egress_ifindex); rx_queue_index and egress_ifindex must be 0 on input.
Frames: every packet type refuses frames shorter than 14 bytes; the skb types
also refuse IPv4 frames shorter than 34 bytes and IPv6 frames shorter than 54.
"""

from __future__ import annotations

from dataclasses import dataclass

from bpfpatch.progtype import ProgType


@dataclass(frozen=True)
class Field:
    """One context field: name, byte offset, size in bytes."""

    name: str
    offset: int
    size: int


@dataclass(frozen=True)
class ContextLayout:
    """How one program type is test-run, and what of it can be observed."""

    prog_type: ProgType
    data: bool  # takes packet data_in (and gives data_out)
    ctx_size: int  # bytes of ctx_in/ctx_out (0: no context passed)
    fields: tuple[Field, ...] = ()
    settable: tuple[str, ...] = ()  # fields a test run accepts non-zero in ctx_in
    reported: tuple[str, ...] = ()  # fields that come back in ctx_out
    not_reported: tuple[str, ...] = ()  # fields programs may write that never come back
    ctx_out: bool = True  # the kernel copies a context back
    ctx_back_in_place: bool = False  # syscall programs: the context is written back into ctx_in
    repeat_allowed: bool = True  # raw_tp and syscall test runs refuse repeat/duration
    min_data: int = 0  # shorter packets are refused (EINVAL)
    data_out_is: str = "packet"  # what data_out holds ("packet", "flow keys", "")
    notes: str = ""

    def runnable(self, data: bytes) -> bool:
        """Would a test run take this frame?  Measured: every packet type refuses frames shorter
        than 14 bytes; the skb types also refuse IPv4 frames shorter than 34 bytes and IPv6
        frames shorter than 54 (a frame cut inside its IP header)."""
        if not self.data:
            return True
        if len(data) < max(self.min_data, 14 if self.data else 0):
            return False
        if self.ctx_size == SK_BUFF_SIZE and len(data) >= 14:
            ethertype = int.from_bytes(data[12:14], "big")
            if (ethertype == 0x0800 and len(data) < 34) or (ethertype == 0x86DD and len(data) < 54):
                return False
        return True

    def field_at(self, offset: int) -> Field | None:
        """The field that holds byte `offset` of the context."""
        for f in self.fields:
            if f.offset <= offset < f.offset + f.size:
                return f
        return None

    def by_name(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def build(self, values: dict[str, int]) -> bytes:
        """A ctx_in with the given fields set (others zero)."""
        buf = bytearray(self.ctx_size)
        for name, v in values.items():
            f = self.by_name(name)
            buf[f.offset:f.offset + f.size] = (v & ((1 << (8 * f.size)) - 1)).to_bytes(f.size, "little")
        return bytes(buf)

    def decode(self, ctx: bytes) -> dict[str, int]:
        """Field name -> value of a context (only non-zero fields)."""
        out = {}
        for f in self.fields:
            v = int.from_bytes(ctx[f.offset:f.offset + f.size], "little")
            if v:
                out[f.name] = v
        return out

    def describe(self) -> str:
        """One line for --help: what is observed and what is not."""
        parts = ["retval"]
        if self.data:
            parts.append(self.data_out_is if self.data_out_is else "packet out")
        if self.ctx_size and (self.ctx_out or self.ctx_back_in_place):
            parts.append("ctx_out " + ", ".join(self.reported) if self.reported else "ctx_out")
        text = f"{self.prog_type.name.lower()}: " + "; ".join(parts)
        if self.not_reported:
            text += f" (never reported by this kernel: {', '.join(self.not_reported)})"
        return text


def _fields(spec: str) -> tuple[Field, ...]:
    out = []
    for item in spec.split():
        name, off, size = item.split(":")
        out.append(Field(name, int(off), int(size)))
    return tuple(out)


# struct __sk_buff (uapi/linux/bpf.h), 192 bytes.
SK_BUFF_FIELDS = _fields(
    "len:0:4 pkt_type:4:4 mark:8:4 queue_mapping:12:4 protocol:16:4 vlan_present:20:4 vlan_tci:24:4 "
    "vlan_proto:28:4 priority:32:4 ingress_ifindex:36:4 ifindex:40:4 tc_index:44:4 cb[0]:48:4 cb[1]:52:4 "
    "cb[2]:56:4 cb[3]:60:4 cb[4]:64:4 hash:68:4 tc_classid:72:4 data:76:4 data_end:80:4 napi_id:84:4 "
    "family:88:4 remote_ip4:92:4 local_ip4:96:4 remote_ip6:100:16 local_ip6:116:16 remote_port:132:4 "
    "local_port:136:4 data_meta:140:4 flow_keys:144:8 tstamp:152:8 wire_len:160:4 gso_segs:164:4 sk:168:8 "
    "gso_size:176:4 tstamp_type:180:1 hwtstamp:184:8"
)
SK_BUFF_SIZE = 192
_SKB_SETTABLE = ("mark", "priority", "cb[0]", "cb[1]", "cb[2]", "cb[3]", "cb[4]", "tstamp")
_SKB_REPORTED = ("mark", "priority", "ifindex", "cb[0]", "cb[1]", "cb[2]", "cb[3]", "cb[4]", "tstamp", "wire_len",
                 "gso_segs", "gso_size", "hwtstamp")
_SKB_NOT_REPORTED = ("queue_mapping", "tc_index", "tc_classid")

# struct xdp_md, 24 bytes.
XDP_MD_FIELDS = _fields("data:0:4 data_end:4:4 data_meta:8:4 ingress_ifindex:12:4 rx_queue_index:16:4 egress_ifindex:20:4")

# struct bpf_flow_keys, 56 bytes (what a flow dissector test run returns in data_out).
FLOW_KEYS_FIELDS = _fields(
    "nhoff:0:2 thoff:2:2 addr_proto:4:2 is_frag:6:1 is_first_frag:7:1 is_encap:8:1 ip_proto:9:1 n_proto:10:2 "
    "sport:12:2 dport:14:2 ipv4_src:16:4 ipv4_dst:20:4 ipv6_src:16:16 ipv6_dst:32:16 flags:48:4 flow_label:52:4"
)


def _skb(pt: ProgType, **kw) -> ContextLayout:
    return ContextLayout(pt, data=True, ctx_size=SK_BUFF_SIZE, fields=SK_BUFF_FIELDS, settable=_SKB_SETTABLE,
                         reported=_SKB_REPORTED, not_reported=_SKB_NOT_REPORTED, min_data=14, **kw)


LAYOUTS: dict[ProgType, ContextLayout] = {
    ProgType.SOCKET_FILTER: _skb(ProgType.SOCKET_FILTER, notes="skb->len and loads start after the 14-byte Ethernet header"),
    ProgType.SCHED_CLS: _skb(ProgType.SCHED_CLS),
    ProgType.SCHED_ACT: _skb(ProgType.SCHED_ACT),
    ProgType.CGROUP_SKB: _skb(ProgType.CGROUP_SKB),
    ProgType.LWT_IN: _skb(ProgType.LWT_IN),
    ProgType.LWT_OUT: _skb(ProgType.LWT_OUT),
    ProgType.LWT_XMIT: _skb(ProgType.LWT_XMIT),
    ProgType.SK_SKB: _skb(ProgType.SK_SKB),
    ProgType.XDP: ContextLayout(ProgType.XDP, data=True, ctx_size=24, fields=XDP_MD_FIELDS,
                                settable=("ingress_ifindex",), reported=tuple(f.name for f in XDP_MD_FIELDS),
                                min_data=14),
    ProgType.FLOW_DISSECTOR: ContextLayout(ProgType.FLOW_DISSECTOR, data=True, ctx_size=0, fields=FLOW_KEYS_FIELDS,
                                           ctx_out=False, min_data=14, data_out_is="flow keys"),
    ProgType.RAW_TRACEPOINT: ContextLayout(ProgType.RAW_TRACEPOINT, data=False, ctx_size=8 * 6,
                                           fields=tuple(Field(f"arg{i}", 8 * i, 8) for i in range(6)),
                                           settable=tuple(f"arg{i}" for i in range(6)), ctx_out=False,
                                           repeat_allowed=False, data_out_is=""),
    ProgType.SYSCALL: ContextLayout(ProgType.SYSCALL, data=False, ctx_size=64,
                                    fields=tuple(Field(f"ctx[{i}]", 8 * i, 8) for i in range(8)),
                                    settable=tuple(f"ctx[{i}]" for i in range(8)),
                                    reported=tuple(f"ctx[{i}]" for i in range(8)), ctx_out=False, ctx_back_in_place=True,
                                    repeat_allowed=False, data_out_is=""),
}


def layout_of(prog_type: ProgType) -> ContextLayout | None:
    """The test-run layout of a program type, None where this kernel has no test run for it."""
    return LAYOUTS.get(prog_type)


__all__ = ["ContextLayout", "FLOW_KEYS_FIELDS", "Field", "LAYOUTS", "SK_BUFF_FIELDS", "SK_BUFF_SIZE",
           "XDP_MD_FIELDS", "layout_of"]
