"""The shipped context mapping: ``struct __sk_buff`` fields the kernel converts with one load.

Offsets in ``struct sk_buff`` differ between kernel builds, so they are read
from the running kernel's BTF (/sys/kernel/btf/vmlinux) when it is there.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from bpfpatch.errors import PatchError
from bpfpatch.isa import Insn
from bpfpatch.isa.opcodes import InsnClass, Mode, Size

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")

# __sk_buff field (uapi offset, access size) -> sk_buff member the kernel loads instead.
SKBUFF_FIELDS = {
    (0, 4): "len",
    (8, 4): "mark",
    (12, 4): "queue_mapping",
    (16, 4): "protocol",
    (24, 4): "vlan_tci",
    (28, 4): "vlan_proto",
    (32, 4): "priority",
    (68, 4): "hash",
}

_LOAD = {1: Size.B, 2: Size.H, 4: Size.W, 8: Size.DW}


@lru_cache(maxsize=1)
def sk_buff_layout(path: str = str(VMLINUX_BTF)) -> dict[str, tuple[int, int]]:
    """member -> (offset, size) in this kernel's struct sk_buff."""
    from bpfpatch.btf import Btf, BtfKind

    try:
        btf = Btf(Path(path).read_bytes())
    except OSError as exc:
        raise PatchError(f"ctx: cannot read kernel BTF {path} ({exc.strerror}); pass your own mapping") from exc
    skb = btf.find(BtfKind.STRUCT, "sk_buff")
    if skb is None:
        raise PatchError("ctx: struct sk_buff not in kernel BTF")
    out = {}
    for member in set(SKBUFF_FIELDS.values()):
        found = btf.member(skb.id, member)
        if found is not None:
            out[member] = found
    return out


def _loader(offset: int, size: int):
    code = InsnClass.LDX | Mode.MEM | _LOAD[size]
    return lambda insn: [Insn(code, insn.dst, insn.src, offset, 0)]


def skbuff_mapping() -> dict:
    """The mapping for socket filters on the running kernel."""
    layout = sk_buff_layout()
    return {key: _loader(*layout[member]) for key, member in SKBUFF_FIELDS.items() if member in layout}
