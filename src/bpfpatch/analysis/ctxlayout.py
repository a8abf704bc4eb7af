"""Context layouts per program type: what a load from the context pointer gives.

The kernel's ``is_valid_access`` callbacks (net/core/filter.c,
kernel/trace/bpf_trace.c) decide, per program type, which context offsets may
be read or written and which of them hold pointers (``data`` ->
PTR_TO_PACKET, ``data_end`` -> PTR_TO_PACKET_END, ``sk`` -> a socket ...).
`CtxLayout` is that decision as data: the struct's size, its fields (name,
offset, size: `bpfpatch.ctxstructs`, the one table of the uapi structures),
and the pointer fields.  The shipped table is the uapi layout.  The layer
that can read the running kernel's BTF hands the analysis its layouts instead
(the analysis imports nothing from `kernel` or `btf`): per call
(``analyze(..., ctx_layout=...)``) or once for the process with
`set_layout_provider`; `layout_for` is what the analysis uses, and
`with_struct` rebuilds a uapi layout on a structure read elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from typing import Callable

from bpfpatch.analysis.facts import RegType
from bpfpatch.ctxstructs import (
    BPF_SK_LOOKUP, BPF_SOCK, BPF_SOCK_ADDR, BPF_SOCK_OPS, CGROUP_DEV_CTX, PERF_EVENT_DATA, PT_REGS, SK_BUFF,
    SK_MSG_MD, SK_REUSEPORT_MD, SOCKOPT, SYSCTL, CtxField, CtxStruct, FieldTable,
)
from bpfpatch.ctxstructs import XDP_MD as XDP_MD_STRUCT
from bpfpatch.progtype import ProgType


@dataclass(frozen=True)
class CtxArg:
    """One argument of a BTF-typed context: what an 8-byte load of it gives (``btf_ctx_access``).

    ``type`` is SCALAR (an integer, enum, struct by value, ``void *`` or ``int *``: loads of any size),
    PTR_TO_BTF_ID or PTR_TO_BTF_ID_OR_NULL (a pointer to kernel struct ``btf_name``), or PTR_TO_BUF_OR_NULL
    (an iterator's key / value buffer).  ``pointer``: the argument is a pointer, so only 8-byte loads of it
    are allowed, even where it reads as a scalar (``void *``, ``int *``).
    """

    type: RegType = RegType.SCALAR
    btf_name: str = ""
    pointer: bool = False


@dataclass(frozen=True)
class CtxLayout(FieldTable):
    """The context of one program type as the verifier sees it.

    ``pointers`` maps a field offset to (the register type a full-width load
    gives, the load size required); ``writable`` (when not None) lists the only
    offsets that may be written; ``denied``
    offsets this program type may not access at all; ``padding`` unnamed members
    the verifier still lets a program read (bpf_sk_lookup's ``__u16 :16`` after
    remote_port, "for backward compatibility"), kept as they are by `with_struct`.  ``size == 0`` means "any
    size" (tracepoint contexts are a buffer of the tracepoint's own layout).
    ``args`` (not None) makes it a BTF-typed context (``btf_ctx_access``: tracing, LSM, struct_ops and
    iterator programs): the attach target's arguments as an array of u64, one `CtxArg` each (fexit's and
    LSM's return value last); ``void_return``: the target returns void, so a struct_ops or LSM program
    need not set R0 (check_return_code).
    """

    struct: str
    size: int
    fields: tuple[CtxField, ...] = ()
    pointers: dict[int, tuple[RegType, int]] = field(default_factory=dict)
    denied: frozenset[int] = frozenset()
    writable: frozenset[int] | None = None
    padding: tuple[CtxField, ...] = ()
    args: "tuple[CtxArg, ...] | None" = None
    void_return: bool = False

    def field_at(self, off: int) -> CtxField | None:
        """The field (or readable padding) holding byte `off`, or None."""
        got = FieldTable.field_at(self, off)
        if got is None:
            got = next((f for f in self.padding if f.offset <= off < f.offset + f.size), None)
        return got


SKB_DATA, SKB_DATA_END, SKB_DATA_META, SKB_FLOW_KEYS, SKB_SK = (
    SK_BUFF.by_name(n).offset for n in ("data", "data_end", "data_meta", "flow_keys", "sk"))
_SKB_PKT = {SKB_DATA: (RegType.PTR_TO_PACKET, 4), SKB_DATA_END: (RegType.PTR_TO_PACKET_END, 4)}

# Fields a socket filter may not touch (sk_filter_is_valid_access).
_SKB_FILTER_DENIED = frozenset({SK_BUFF.by_name(n).offset for n in ("tc_classid", "data", "data_end", "data_meta",
                                                                     "flow_keys", "tstamp", "hwtstamp")})
_SK_PTR = (RegType.PTR_TO_SOCK_COMMON_OR_NULL, 8)


def of_struct(struct: CtxStruct, pointers: dict[int, tuple[RegType, int]] | None = None, **kw) -> CtxLayout:
    """The layout of a context structure, with the verifier's pointer fields (offset -> type, load size)."""
    return CtxLayout(struct.name, struct.size, struct.fields, dict(pointers or {}), **kw)


def _skb(pointers: dict[int, tuple[RegType, int]], denied: frozenset[int] = frozenset()) -> CtxLayout:
    return of_struct(SK_BUFF, pointers, denied=denied)


XDP_MD = of_struct(XDP_MD_STRUCT, {0: (RegType.PTR_TO_PACKET, 4), 4: (RegType.PTR_TO_PACKET_END, 4),
                                   8: (RegType.PTR_TO_PACKET_META, 4)}, writable=frozenset())
ANY = CtxLayout("ctx", 0)

UAPI_LAYOUTS: dict[ProgType, CtxLayout] = {
    ProgType.SOCKET_FILTER: _skb({SKB_SK: _SK_PTR}, _SKB_FILTER_DENIED),  # bpf_skb_is_valid_access gives sk to all
    ProgType.SCHED_CLS: _skb({**_SKB_PKT, SKB_DATA_META: (RegType.PTR_TO_PACKET_META, 4), SKB_SK: _SK_PTR}),
    ProgType.SCHED_ACT: _skb({**_SKB_PKT, SKB_DATA_META: (RegType.PTR_TO_PACKET_META, 4), SKB_SK: _SK_PTR}),
    ProgType.CGROUP_SKB: _skb({**_SKB_PKT, SKB_SK: _SK_PTR}),
    ProgType.LWT_IN: _skb(_SKB_PKT), ProgType.LWT_OUT: _skb(_SKB_PKT), ProgType.LWT_XMIT: _skb(_SKB_PKT),
    ProgType.LWT_SEG6LOCAL: _skb(_SKB_PKT),
    ProgType.SK_SKB: _skb({**_SKB_PKT, SKB_SK: _SK_PTR}),
    ProgType.FLOW_DISSECTOR: _skb({**_SKB_PKT, SKB_FLOW_KEYS: (RegType.PTR_TO_FLOW_KEYS, 8)}),
    ProgType.XDP: XDP_MD,
    ProgType.CGROUP_SOCK: of_struct(BPF_SOCK),
    ProgType.CGROUP_SOCK_ADDR: of_struct(BPF_SOCK_ADDR, {64: (RegType.PTR_TO_SOCKET, 8)}),
    ProgType.SOCK_OPS: of_struct(BPF_SOCK_OPS, {184: (RegType.PTR_TO_SOCKET_OR_NULL, 8), 192: (RegType.PTR_TO_PACKET, 8),
                                                200: (RegType.PTR_TO_PACKET_END, 8)}),
    ProgType.KPROBE: of_struct(PT_REGS),
    ProgType.PERF_EVENT: of_struct(PERF_EVENT_DATA),
    ProgType.SK_MSG: of_struct(SK_MSG_MD, {0: (RegType.PTR_TO_PACKET, 8), 8: (RegType.PTR_TO_PACKET_END, 8),
                                           72: (RegType.PTR_TO_SOCKET, 8)}),
    ProgType.SK_REUSEPORT: of_struct(SK_REUSEPORT_MD, {0: (RegType.PTR_TO_PACKET, 8), 8: (RegType.PTR_TO_PACKET_END, 8),
                                                       40: (RegType.PTR_TO_SOCKET, 8),
                                                       48: (RegType.PTR_TO_SOCK_COMMON_OR_NULL, 8)}),
    ProgType.SK_LOOKUP: of_struct(BPF_SK_LOOKUP, {0: (RegType.PTR_TO_SOCKET_OR_NULL, 8)},
                                  padding=(CtxField("", BPF_SK_LOOKUP.by_name("remote_port").offset + 2, 2),)),
    ProgType.CGROUP_DEVICE: of_struct(CGROUP_DEV_CTX),
    ProgType.CGROUP_SYSCTL: of_struct(SYSCTL),
    ProgType.CGROUP_SOCKOPT: of_struct(SOCKOPT, {0: (RegType.PTR_TO_SOCKET, 8), 8: (RegType.PTR_TO_PACKET, 8),
                                                 16: (RegType.PTR_TO_PACKET_END, 8)}),
}


def uapi_layout(prog_type: ProgType) -> CtxLayout:
    """The shipped layout of `prog_type`'s context (``ANY`` for types with a free-form context)."""
    return UAPI_LAYOUTS.get(prog_type, ANY)


def with_struct(layout: CtxLayout, struct: CtxStruct) -> CtxLayout:
    """`layout` on another copy of its structure (e.g. the running kernel's, from BTF): its size and fields,
    the pointer / denied / writable decisions carried over by field name (those the structure lacks dropped)."""
    at = {f.name: f.offset for f in struct.fields}
    moved = {f.offset: at[f.name] for f in layout.fields if f.name in at}

    def remap(offsets):
        return None if offsets is None else frozenset(moved[o] for o in offsets if o in moved)

    return CtxLayout(struct.name, struct.size, struct.fields,
                     {moved[o]: v for o, v in layout.pointers.items() if o in moved},
                     remap(layout.denied) or frozenset(), remap(layout.writable), layout.padding)


_provider: Callable[[ProgType], CtxLayout | None] | None = None


def set_layout_provider(provider: Callable[[ProgType], CtxLayout | None] | None) -> None:
    """Install the function that gives the running kernel's layout of a program type (None: the uapi table).

    The kernel / command-line layer installs one over the kernel's BTF; the
    analysis calls it through `layout_for` and never imports that layer.
    """
    global _provider
    _provider = provider


def layout_for(prog_type: ProgType) -> CtxLayout:
    """The layout the analysis uses: the installed provider's, else the uapi one."""
    if _provider is not None:
        try:
            got = _provider(prog_type)
        except Exception:  # noqa: BLE001 - the kernel's BTF unreadable here: the uapi table it is
            got = None
        if got is not None:
            return got
    return uapi_layout(prog_type)


__all__ = ["ANY", "CtxArg", "CtxField", "CtxLayout", "UAPI_LAYOUTS", "XDP_MD", "layout_for", "of_struct", "set_layout_provider",
           "uapi_layout", "with_struct"]
