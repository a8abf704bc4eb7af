"""Context layouts the prover reads: ``struct __sk_buff`` and ``struct xdp_md``, with each value's width.

The offsets are `bpfpatch.ctxstructs`' (the one uapi table), the kernel-side
members `bpfpatch.passes.ctx_skbuff`'s; this module adds what only the prover
needs (and imports nothing from the kernel layer).

A context field is one symbolic value shared by both programs, whatever layout
a program reads it through: the user layout (uapi offsets) or, for a program
the ``ctx`` pass rewrote, the kernel's ``struct sk_buff`` (offsets from this
kernel's BTF).  Each entry is ``name: (offset, size in the layout, width of the
value in bits)``; a load narrower than the field reads its low bytes (little
endian), a field wider in the layout than its value is zero-extended.
"""

from __future__ import annotations

from typing import NamedTuple

from bpfpatch.ctxstructs import SK_BUFF, CtxStruct
from bpfpatch.ctxstructs import XDP_MD as XDP_MD_STRUCT
from bpfpatch.passes.ctx_skbuff import SKBUFF_MEMBERS, sk_buff_layout
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

#: Fields whose value is narrower than the field (the rest of a field's bits are its value).
_VALUE_BITS = {"queue_mapping": 16, "protocol": 16, "vlan_tci": 16, "vlan_proto": 16}
#: __sk_buff fields the prover does not model (pointers to other objects, arrays of the IPv6 addresses).
_SKB_UNMODELLED = ("remote_ip6", "local_ip6", "flow_keys", "sk", "tstamp_type")


def _layout(struct: CtxStruct, skip: tuple[str, ...] = ()) -> list[Field]:
    """`struct`'s fields (`bpfpatch.ctxstructs`, the one uapi table), each with its value's width."""
    return [Field(f.name, f.offset, f.size, _VALUE_BITS.get(f.name, 8 * f.size)) for f in struct.fields
            if f.name.partition("[")[0] not in skip]


# struct __sk_buff (include/uapi/linux/bpf.h), the fields programs read, and struct xdp_md.
SK_BUFF_UAPI = _layout(SK_BUFF, _SKB_UNMODELLED)
XDP_MD = _layout(XDP_MD_STRUCT)

# Fields whose value the kernel's test run fixes (not settable): the values it gives them.
SKB_TEST_RUN_DEFAULTS = {"pkt_type": 0, "queue_mapping": 0, "vlan_present": 0, "vlan_tci": 0, "vlan_proto": 0,
                         "ingress_ifindex": 1, "ifindex": 1, "tc_index": 0, "hash": 0, "tc_classid": 0,
                         "napi_id": 0, "family": 0, "remote_ip4": 0, "local_ip4": 0, "remote_port": 0,
                         "local_port": 0}
XDP_TEST_RUN_DEFAULTS = {"ingress_ifindex": 1, "rx_queue_index": 0, "egress_ifindex": 0}

#: The program types with an __sk_buff context that a test run takes: those of `bpfpatch.kernel.ctxlayout`
#: (a test holds the two equal; the solver does not import the kernel layer).
SKB_TYPES = frozenset({ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.SCHED_ACT, ProgType.CGROUP_SKB,
                       ProgType.LWT_IN, ProgType.LWT_OUT, ProgType.LWT_XMIT, ProgType.SK_SKB})

# The ctx pass's kernel-side fields: __sk_buff name -> struct sk_buff member.
KERNEL_MEMBERS = SKBUFF_MEMBERS


def user_layout(ptype: ProgType) -> list[Field]:
    """The context layout a program of type `ptype` reads through r1."""
    if ptype == ProgType.XDP:
        return XDP_MD
    if ptype in SKB_TYPES:
        return SK_BUFF_UAPI
    return []


def kernel_skb_layout() -> list[Field]:
    """struct sk_buff as the running kernel lays it out (the fields the ctx pass converts)."""
    layout = sk_buff_layout()
    widths = {f.name: f.bits for f in SK_BUFF_UAPI}
    return [Field(name, *layout[member], widths[name]) for name, member in KERNEL_MEMBERS.items() if member in layout]


def field_at(layout: list[Field], offset: int, size: int) -> Field | None:
    """The field an access of `size` bytes at `offset` falls in, or None."""
    for f in layout:
        if f.offset <= offset and offset + size <= f.offset + f.size:
            return f
    return None
