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
from functools import lru_cache
from pathlib import Path

from bpfpatch.analysis.ctxlayout import ANY, UAPI_LAYOUTS, CtxLayout, set_layout_provider, with_struct
from bpfpatch.btf import Btf, BtfKind
from bpfpatch.btf.vmlinux import KernelTypes, kernel_types
from bpfpatch.ctxstructs import FLOW_KEYS, SK_BUFF, XDP_MD, CtxField, CtxStruct, FieldTable, fields
from bpfpatch.passes.ctx_layout import layout_from_btf
from bpfpatch.passes.ctx_layout import set_layout_provider as set_kernel_layout_provider
from bpfpatch.progtype import ProgType


#: One context field (the shared table's type).
Field = CtxField


@dataclass(frozen=True)
class ContextLayout(FieldTable):
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


# The structures: the one uapi table (`bpfpatch.ctxstructs`).
SK_BUFF_FIELDS = SK_BUFF.fields
SK_BUFF_SIZE = SK_BUFF.size
_SKB_SETTABLE = ("mark", "priority", "cb[0]", "cb[1]", "cb[2]", "cb[3]", "cb[4]", "tstamp")
_SKB_REPORTED = ("mark", "priority", "ifindex", "cb[0]", "cb[1]", "cb[2]", "cb[3]", "cb[4]", "tstamp", "wire_len",
                 "gso_segs", "gso_size", "hwtstamp")
_SKB_NOT_REPORTED = ("queue_mapping", "tc_index", "tc_classid")

XDP_MD_FIELDS = XDP_MD.fields
#: What a flow dissector test run returns in data_out.
FLOW_KEYS_FIELDS = FLOW_KEYS.fields


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



# --- the running kernel's context structures (its BTF) -------------------------------------

#: The running kernel's BTF.
VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")


@lru_cache(maxsize=4)
def kernel_btf(path: str = str(VMLINUX_BTF)) -> Btf:
    """The parsed BTF at `path`, read once per process (what the kernel pass's structure layouts need)."""
    return Btf(Path(path).read_bytes())


def struct_from_btf(btf: Btf | KernelTypes, name: str) -> CtxStruct | None:
    """A context structure as `btf` has it (None if absent): nested structs entered (``regs.ip``;
    anonymous ones add no prefix), a union through its first member, unnamed padding skipped, an
    array one field per element (``cb[0]``), like `bpfpatch.ctxstructs`."""
    t = btf.find(BtfKind.STRUCT, name)
    if t is None:
        return None
    rows: list[tuple[str, int, int]] = []
    stack = [(t, 0, "")]
    while stack:
        parent, base, prefix = stack.pop()
        nested = []
        # A union is read through its first member (the uapi name; later ones alias it).
        members = parent.members[:1] if parent.kind == BtfKind.UNION else parent.members
        for mname, mtype, bits in members:
            inner = btf.resolve(mtype)
            off = base + bits // 8
            if inner.kind in (BtfKind.STRUCT, BtfKind.UNION):
                nested.append((inner, off, f"{prefix}{mname}." if mname else prefix))
                continue
            if not mname:
                continue
            mname = prefix + mname
            if inner.kind == BtfKind.ARRAY:
                elem, _, count = inner.extra
                size = btf.size_of(elem)
                rows += [(f"{mname}[{i}]", off + i * size, size) for i in range(count)]
            else:
                rows.append((mname, off, btf.size_of(mtype)))
        stack += reversed(nested)
    return CtxStruct(name, t.size_or_type, fields(*sorted(rows, key=lambda r: r[1])))


def btf_ctx_layouts(btf: Btf | KernelTypes) -> dict[ProgType, CtxLayout]:
    """The analysis' context layouts on `btf`'s structures (the uapi decisions, this kernel's offsets and sizes)."""
    out = {}
    for ptype, uapi in UAPI_LAYOUTS.items():
        struct = struct_from_btf(btf, uapi.struct)
        if struct is not None:
            out[ptype] = with_struct(uapi, struct)
    return out


def install_kernel_layouts(path: Path = VMLINUX_BTF) -> bool:
    """Hand the analysis and the passes the running kernel's layouts (its BTF, read on first use: the
    analysis' through `bpfpatch.btf.vmlinux.kernel_types`, about 0.1 s, shared with its kfuncs; the kernel pass's through a full parse).

    The analysis gets its context layouts (`bpfpatch.analysis.ctxlayout.set_layout_provider`), the
    kernel pass its internal structures (`bpfpatch.passes.ctx_layout.set_layout_provider`); where
    there is no BTF nothing is installed (both keep their shipped tables) and False comes back.
    """
    if not Path(path).exists():
        return False
    layouts: dict[ProgType, CtxLayout] = {}

    def analysis_layout(ptype: ProgType) -> CtxLayout | None:
        if not layouts:
            types = kernel_types(Path(path))
            layouts.update((btf_ctx_layouts(types) if types is not None else {}) or {ProgType.UNSPEC: ANY})
        return layouts.get(ptype)

    set_layout_provider(analysis_layout)
    set_kernel_layout_provider(lambda: layout_from_btf(kernel_btf(str(path))))
    return True


__all__ = ["ContextLayout", "FLOW_KEYS_FIELDS", "Field", "LAYOUTS", "SK_BUFF_FIELDS", "SK_BUFF_SIZE", "VMLINUX_BTF",
           "XDP_MD_FIELDS", "btf_ctx_layouts", "install_kernel_layouts", "kernel_btf", "layout_of", "struct_from_btf"]
