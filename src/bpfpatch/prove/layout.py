"""Context layouts the prover reads: ``struct __sk_buff`` and ``struct xdp_md`` as tables.

A context field is one symbolic value shared by both programs, whatever layout
a program reads it through: the user layout (uapi offsets) or, for a program
the ``ctx`` pass rewrote, the kernel's ``struct sk_buff`` (offsets from this
kernel's BTF).  Each entry is ``name: (offset, size in the layout, width of the
value in bits)``; a load narrower than the field reads its low bytes (little
endian), a field wider in the layout than its value is zero-extended.
"""

from __future__ import annotations

from typing import NamedTuple

from bpfpatch.progtype import ProgType


class Field(NamedTuple):
    """One context field in one layout."""

    name: str
    offset: int
    size: int
    bits: int


# Pointer fields: what a load of them yields (a pointer into the packet, or its end).
PKT_DATA = "data"
PKT_END = "data_end"
PKT_META = "data_meta"
POINTER_FIELDS = frozenset({PKT_DATA, PKT_END, PKT_META})

# struct __sk_buff (include/uapi/linux/bpf.h), the fields programs read.
SK_BUFF_UAPI = [
    Field("len", 0, 4, 32), Field("pkt_type", 4, 4, 32), Field("mark", 8, 4, 32),
    Field("queue_mapping", 12, 4, 16), Field("protocol", 16, 4, 16), Field("vlan_present", 20, 4, 32),
    Field("vlan_tci", 24, 4, 16), Field("vlan_proto", 28, 4, 16), Field("priority", 32, 4, 32),
    Field("ingress_ifindex", 36, 4, 32), Field("ifindex", 40, 4, 32), Field("tc_index", 44, 4, 32),
    Field("cb0", 48, 4, 32), Field("cb1", 52, 4, 32), Field("cb2", 56, 4, 32), Field("cb3", 60, 4, 32),
    Field("cb4", 64, 4, 32), Field("hash", 68, 4, 32), Field("tc_classid", 72, 4, 32),
    Field(PKT_DATA, 76, 4, 32), Field(PKT_END, 80, 4, 32), Field("napi_id", 84, 4, 32),
    Field("family", 88, 4, 32), Field("remote_ip4", 92, 4, 32), Field("local_ip4", 96, 4, 32),
    Field("remote_port", 132, 4, 32), Field("local_port", 136, 4, 32), Field(PKT_META, 140, 4, 32),
    Field("tstamp", 152, 8, 64), Field("wire_len", 160, 4, 32), Field("gso_segs", 164, 4, 32),
    Field("gso_size", 176, 4, 32), Field("hwtstamp", 184, 8, 64),
]

# struct xdp_md.
XDP_MD = [
    Field(PKT_DATA, 0, 4, 32), Field(PKT_END, 4, 4, 32), Field(PKT_META, 8, 4, 32),
    Field("ingress_ifindex", 12, 4, 32), Field("rx_queue_index", 16, 4, 32), Field("egress_ifindex", 20, 4, 32),
]

# __sk_buff fields BPF_PROG_TEST_RUN takes from ctx_in (convert___skb_to_skb); the rest must be zero.
SKB_CTX_IN = frozenset({"mark", "priority", "cb0", "cb1", "cb2", "cb3", "cb4", "tstamp", "wire_len",
                        "gso_segs", "gso_size", "hwtstamp"})

# Fields whose value the kernel's test run fixes (not settable): the values it gives them.
SKB_TEST_RUN_DEFAULTS = {"pkt_type": 0, "queue_mapping": 0, "vlan_present": 0, "vlan_tci": 0, "vlan_proto": 0,
                         "ingress_ifindex": 1, "ifindex": 1, "tc_index": 0, "hash": 0, "tc_classid": 0,
                         "napi_id": 0, "family": 0, "remote_ip4": 0, "local_ip4": 0, "remote_port": 0,
                         "local_port": 0}
XDP_TEST_RUN_DEFAULTS = {"ingress_ifindex": 1, "rx_queue_index": 0, "egress_ifindex": 0}

SKB_TYPES = frozenset({ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.SCHED_ACT, ProgType.CGROUP_SKB,
                       ProgType.LWT_IN, ProgType.LWT_OUT, ProgType.LWT_XMIT, ProgType.SK_SKB})

# The ctx pass's kernel-side fields: __sk_buff name -> struct sk_buff member.
KERNEL_MEMBERS = {"len": "len", "mark": "mark", "queue_mapping": "queue_mapping", "protocol": "protocol",
                  "vlan_tci": "vlan_tci", "vlan_proto": "vlan_proto", "priority": "priority", "hash": "hash"}


def user_layout(ptype: ProgType) -> list[Field]:
    """The context layout a program of type `ptype` reads through r1."""
    if ptype == ProgType.XDP:
        return XDP_MD
    if ptype in SKB_TYPES:
        return SK_BUFF_UAPI
    return []


def kernel_skb_layout() -> list[Field]:
    """struct sk_buff as the running kernel lays it out (the fields the ctx pass converts)."""
    from bpfpatch.passes.ctx_skbuff import sk_buff_layout

    layout = sk_buff_layout()
    widths = {f.name: f.bits for f in SK_BUFF_UAPI}
    return [Field(name, *layout[member], widths[name]) for name, member in KERNEL_MEMBERS.items() if member in layout]


def field_at(layout: list[Field], offset: int, size: int) -> Field | None:
    """The field an access of `size` bytes at `offset` falls in, or None."""
    for f in layout:
        if f.offset <= offset and offset + size <= f.offset + f.size:
            return f
    return None
