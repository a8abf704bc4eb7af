"""The shipped context mapping: ``struct __sk_buff`` fields the kernel converts with one load.

Offsets in ``struct sk_buff`` differ between kernel builds, so they come from
the running kernel's BTF (/sys/kernel/btf/vmlinux) through the layout provider
of `bpfpatch.passes.ctx_layout` (installed by the layers above), the shipped
table otherwise.
"""

from __future__ import annotations

from pathlib import Path

from bpfpatch.ctxstructs import SK_BUFF
from bpfpatch.isa import Insn
from bpfpatch.isa.opcodes import InsnClass, Mode, Size
from bpfpatch.passes.ctx_layout import layout

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")

#: __sk_buff field -> the sk_buff member the kernel loads instead (one load, same name and size).
SKBUFF_MEMBERS = {name: name for name in ("len", "mark", "queue_mapping", "protocol", "vlan_tci", "vlan_proto",
                                          "priority", "hash")}
#: The same by the field's (uapi offset, access size).
SKBUFF_FIELDS = {(f.offset, f.size): SKBUFF_MEMBERS[f.name] for f in SK_BUFF.fields if f.name in SKBUFF_MEMBERS}

_LOAD = {1: Size.B, 2: Size.H, 4: Size.W, 8: Size.DW}


def sk_buff_layout() -> dict[str, tuple[int, int]]:
    """member -> (offset, size) in this kernel's struct sk_buff.

    The offsets are `bpfpatch.passes.ctx_layout`'s: this kernel's BTF when the
    layer above installed its provider (``bpfpatch patch`` does), else the
    shipped table (this layer reads no BTF itself).
    """
    table = layout()
    return {m: table[f"sk_buff.{m}"] for m in set(SKBUFF_FIELDS.values()) if f"sk_buff.{m}" in table}


def _loader(offset: int, size: int):
    code = InsnClass.LDX | Mode.MEM | _LOAD[size]
    return lambda insn: [Insn(code, insn.dst, insn.src, offset, 0)]


def skbuff_mapping() -> dict:
    """The mapping for socket filters on the running kernel."""
    layout = sk_buff_layout()
    return {key: _loader(*layout[member]) for key, member in SKBUFF_FIELDS.items() if member in layout}
