"""Program types: `enum bpf_prog_type` and the names users give them.

Below every layer that needs to know what kind of program it holds (the
analysis reads the context layout of the type, the passes refuse types they do
not support, the kernel interface loads with it).

    >>> prog_type_of("xdp"), prog_type_of("tc/ingress"), prog_type_of(3)
    (<ProgType.XDP: 6>, <ProgType.SCHED_CLS: 3>, <ProgType.SCHED_CLS: 3>)
"""

from __future__ import annotations

from enum import IntEnum

from bpfpatch.errors import BpfPatchError


class UnknownProgType(BpfPatchError, ValueError):
    """A program type name or number that is not one of `ProgType`."""


class ProgType(IntEnum):
    """enum bpf_prog_type (uapi/linux/bpf.h)."""

    UNSPEC = 0
    SOCKET_FILTER = 1
    KPROBE = 2
    SCHED_CLS = 3
    SCHED_ACT = 4
    TRACEPOINT = 5
    XDP = 6
    PERF_EVENT = 7
    CGROUP_SKB = 8
    CGROUP_SOCK = 9
    LWT_IN = 10
    LWT_OUT = 11
    LWT_XMIT = 12
    SOCK_OPS = 13
    SK_SKB = 14
    CGROUP_DEVICE = 15
    SK_MSG = 16
    RAW_TRACEPOINT = 17
    CGROUP_SOCK_ADDR = 18
    LWT_SEG6LOCAL = 19
    LIRC_MODE2 = 20
    SK_REUSEPORT = 21
    FLOW_DISSECTOR = 22
    CGROUP_SYSCTL = 23
    RAW_TRACEPOINT_WRITABLE = 24
    CGROUP_SOCKOPT = 25
    TRACING = 26
    STRUCT_OPS = 27
    EXT = 28
    LSM = 29
    SK_LOOKUP = 30
    SYSCALL = 31
    NETFILTER = 32


# Program types BPF_PROG_TEST_RUN runs with packet data (and, for some, a context).
PACKET_RUNNABLE = frozenset({ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.SCHED_ACT, ProgType.XDP,
                             ProgType.CGROUP_SKB, ProgType.LWT_IN, ProgType.LWT_OUT, ProgType.LWT_XMIT,
                             ProgType.SK_SKB, ProgType.FLOW_DISSECTOR})

# ELF section name prefixes (libbpf's conventions) -> program type; longest prefix wins.
SECTION_TYPES = {
    "socket": ProgType.SOCKET_FILTER, "tc": ProgType.SCHED_CLS, "tcx": ProgType.SCHED_CLS,
    "classifier": ProgType.SCHED_CLS, "action": ProgType.SCHED_ACT, "xdp": ProgType.XDP,
    "kprobe": ProgType.KPROBE, "kretprobe": ProgType.KPROBE, "uprobe": ProgType.KPROBE,
    "tracepoint": ProgType.TRACEPOINT, "tp": ProgType.TRACEPOINT, "raw_tracepoint": ProgType.RAW_TRACEPOINT,
    "raw_tp": ProgType.RAW_TRACEPOINT, "perf_event": ProgType.PERF_EVENT, "cgroup_skb": ProgType.CGROUP_SKB,
    "cgroup/skb": ProgType.CGROUP_SKB, "sk_skb": ProgType.SK_SKB, "sk_msg": ProgType.SK_MSG,
    "lwt_in": ProgType.LWT_IN, "lwt_out": ProgType.LWT_OUT, "lwt_xmit": ProgType.LWT_XMIT,
    "flow_dissector": ProgType.FLOW_DISSECTOR, "sockops": ProgType.SOCK_OPS, "sk_lookup": ProgType.SK_LOOKUP,
    "syscall": ProgType.SYSCALL,
}


def prog_type_of(value: "ProgType | int | str") -> ProgType:
    """A program type from its enum, number, or name ("xdp", "socket_filter", "sched_cls", ...)."""
    if isinstance(value, ProgType):
        return value
    if isinstance(value, int):
        try:
            return ProgType(value)
        except ValueError:
            raise UnknownProgType(f"unknown program type number {value}") from None
    key = value.strip().upper().replace("-", "_")
    if key in ProgType.__members__:
        return ProgType[key]
    low = value.lower()
    for prefix in sorted(SECTION_TYPES, key=len, reverse=True):
        if low.startswith(prefix):
            return SECTION_TYPES[prefix]
    raise UnknownProgType(f"unknown program type {value!r} (e.g. socket_filter, sched_cls, xdp)")


__all__ = ["PACKET_RUNNABLE", "SECTION_TYPES", "ProgType", "UnknownProgType", "prog_type_of"]
