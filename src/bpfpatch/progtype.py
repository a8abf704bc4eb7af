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

# ELF section name prefixes (libbpf's `section_defs`, tools/lib/bpf/libbpf.c) -> program type. A name matches
# a prefix it equals or that it continues with "/" (libbpf's rule, so "tp_btf/x" is not "tp"); failing that, the
# longest prefix it starts with (the older loaders' looser rule: "kprobe__x", "xdp_prog").
_P = ProgType
SECTION_TYPES = {
    "socket": _P.SOCKET_FILTER, "sk_reuseport": _P.SK_REUSEPORT, "sk_reuseport/migrate": _P.SK_REUSEPORT,
    **dict.fromkeys(("kprobe", "kretprobe", "uprobe", "uprobe.s", "uretprobe", "uretprobe.s", "kprobe.multi",
                     "kretprobe.multi", "kprobe.session", "uprobe.multi", "uretprobe.multi", "uprobe.multi.s",
                     "uretprobe.multi.s", "ksyscall", "kretsyscall", "usdt", "usdt.s"), _P.KPROBE),
    **dict.fromkeys(("tc", "tcx", "classifier", "netkit"), _P.SCHED_CLS), "action": _P.SCHED_ACT,
    "tracepoint": _P.TRACEPOINT, "tp": _P.TRACEPOINT, "raw_tracepoint": _P.RAW_TRACEPOINT, "raw_tp": _P.RAW_TRACEPOINT,
    "raw_tracepoint.w": _P.RAW_TRACEPOINT_WRITABLE, "raw_tp.w": _P.RAW_TRACEPOINT_WRITABLE,
    **dict.fromkeys(("tp_btf", "fentry", "fmod_ret", "fexit", "fentry.s", "fmod_ret.s", "fexit.s", "iter", "iter.s"),
                    _P.TRACING),
    "freplace": _P.EXT, "lsm": _P.LSM, "lsm.s": _P.LSM, "lsm_cgroup": _P.LSM, "syscall": _P.SYSCALL,
    "xdp": _P.XDP, "xdp.frags": _P.XDP, "perf_event": _P.PERF_EVENT,
    "lwt_in": _P.LWT_IN, "lwt_out": _P.LWT_OUT, "lwt_xmit": _P.LWT_XMIT, "lwt_seg6local": _P.LWT_SEG6LOCAL,
    "sockops": _P.SOCK_OPS, "sk_skb": _P.SK_SKB, "sk_msg": _P.SK_MSG, "lirc_mode2": _P.LIRC_MODE2,
    "flow_dissector": _P.FLOW_DISSECTOR, "cgroup_skb": _P.CGROUP_SKB, "cgroup/skb": _P.CGROUP_SKB,
    **{f"cgroup/{k}": _P.CGROUP_SOCK for k in ("sock_create", "sock_release", "sock", "post_bind4", "post_bind6")},
    **{f"cgroup/{k}{v}": _P.CGROUP_SOCK_ADDR for k in ("bind", "connect", "sendmsg", "recvmsg", "getpeername",
                                                        "getsockname") for v in ("4", "6", "_unix")},
    "cgroup/sysctl": _P.CGROUP_SYSCTL, "cgroup/getsockopt": _P.CGROUP_SOCKOPT, "cgroup/setsockopt": _P.CGROUP_SOCKOPT,
    "cgroup/dev": _P.CGROUP_DEVICE, "struct_ops": _P.STRUCT_OPS, "struct_ops.s": _P.STRUCT_OPS,
    "sk_lookup": _P.SK_LOOKUP, "netfilter": _P.NETFILTER,
}
del _P


def libbpf_section(section: str) -> str:
    """The section name libbpf matches: a leading ``?`` (``SEC("?tc")``: not loaded unless asked) dropped.

    libbpf "forgets there was ? in section name" (bpf_object__init_prog): ``?tc`` is a tc program,
    ``?fentry/bpf_check`` an fentry one on ``bpf_check``.
    """
    return section[1:] if section.startswith("?") else section


def prog_type_of(value: "ProgType | int | str") -> ProgType:
    """A program type from its enum, number, or name ("xdp", "socket_filter", "sched_cls", ...), or an ELF
    section's name as libbpf reads it (`libbpf_section`, `SECTION_TYPES`)."""
    if isinstance(value, ProgType):
        return value
    if isinstance(value, int):
        try:
            return ProgType(value)
        except ValueError:
            raise UnknownProgType(f"unknown program type number {value}") from None
    value = libbpf_section(value)
    key = value.strip().upper().replace("-", "_")
    if key in ProgType.__members__:
        return ProgType[key]
    low = value.lower()
    prefixes = sorted(SECTION_TYPES, key=len, reverse=True)
    for prefix in prefixes:
        if low == prefix or low.startswith(prefix + "/"):
            return SECTION_TYPES[prefix]
    for prefix in prefixes:
        if low.startswith(prefix):
            return SECTION_TYPES[prefix]
    raise UnknownProgType(f"unknown program type {value!r} (e.g. socket_filter, sched_cls, xdp)")


def untyped_section(section: str, where: str = "") -> UnknownProgType:
    """The error for an ELF section whose name gives no program type (suricata's ``filter``, ``loadbalancer``).

    libbpf opens such an object but refuses to load the program ("missing BPF prog type, check ELF section
    name"); its loader must name the type (suricata calls ``bpf_program__set_type``): so must bpfpatch's user.
    `where` prefixes the message (the file).
    """
    return UnknownProgType(f"{where}section {section!r} names no program type (libbpf refuses to load it too: "
                           f"\"missing BPF prog type\"; its names are socket, xdp, tc, kprobe/..., tracepoint/..., ...): "
                           f"give one with --prog-type, e.g. --prog-type socket_filter")


def section_prog_type(section: str, where: str = "") -> ProgType:
    """The program type an ELF section name gives; a name that gives none is `untyped_section`'s error."""
    try:
        return prog_type_of(section)
    except UnknownProgType:
        raise untyped_section(section, where) from None


__all__ = ["PACKET_RUNNABLE", "SECTION_TYPES", "ProgType", "UnknownProgType", "libbpf_section", "prog_type_of", "section_prog_type",
           "untyped_section"]
