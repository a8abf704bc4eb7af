"""ctx: context-access conversion, table-driven (the kernel's convert_ctx_accesses).

Programs read a stable user-facing context (``struct __sk_buff``); the kernel
rewrites each access into loads from its internal structure (``struct
sk_buff``), whose layout changes between builds.  A *mapping* says how::

    mapping = {
        # (offset in the user context, access size in bytes) -> builder
        (0, 4): lambda insn: [Insn(0x61, insn.dst, insn.src, 112, 0)],   # __sk_buff.len
    }

A builder gets the original load (``insn.dst``/``insn.src`` are the
destination and the context pointer) and returns its replacement.  Accesses
the mapping does not list are left alone.  Pass your own mapping with
``PassContext(options={"ctx": {"mapping": mapping}})``; an optional
``"prologue"`` (instructions before the first one) and ``"epilogue"``
(before every exit) are inserted with `PatchList.prepend`.

The context pointer is tracked simply: r1 at entry, and registers copied
from it (``rX = r1``) until they are overwritten.  The shipped mapping is
`bpfpatch.passes.ctx_skbuff.skbuff_mapping` for socket filters, computed
from this kernel's BTF.
"""

from __future__ import annotations

from typing import Callable, ClassVar

from bpfpatch.isa import KIND_OF, Insn, Kind
from bpfpatch.isa.opcodes import SIZE_BYTES, SIZE_MASK, AluOp, InsnClass, Size, Source
from bpfpatch.passes.base import PassContext
from bpfpatch.patch import PatchList

Builder = Callable[[Insn], list[Insn]]
Mapping = dict[tuple[int, int], Builder]


def ctx_registers(pl: PatchList):
    """Yield (node, set of registers holding the context pointer before it), straight-line approximation.

    A jump target resets the knowledge to "r1 only if nothing redefined it" -- the
    conservative reading for the simple programs this pass targets.
    """
    ctx = {1}
    for node in pl:
        insn = node.insn
        yield node, frozenset(ctx)
        kind = KIND_OF[insn.code]
        if kind == Kind.ALU_X and insn.code == InsnClass.ALU64 | AluOp.MOV | Source.X and insn.off == 0:
            if insn.src in ctx:
                ctx.add(insn.dst)
            else:
                ctx.discard(insn.dst)
        elif kind == Kind.CALL:
            ctx -= {0, 1, 2, 3, 4, 5}
        elif kind in (Kind.ALU_K, Kind.ALU_X, Kind.NEG, Kind.END, Kind.LDX, Kind.LDSX, Kind.LD_IMM64):
            ctx.discard(insn.dst)


class CtxAccess:
    """Rewrite context loads through a mapping; insert prologue / epilogue."""

    name: ClassVar[str] = "ctx"

    def run(self, pl: PatchList, ctx: PassContext) -> None:
        opts = ctx.options.get("ctx", {})
        mapping: Mapping | None = opts.get("mapping")
        if mapping is None:
            from bpfpatch.passes.ctx_skbuff import skbuff_mapping

            mapping = skbuff_mapping()
        todo = []
        for node, regs in ctx_registers(pl):
            insn = node.insn
            if KIND_OF[insn.code] == Kind.LDX and insn.src in regs:
                key = (insn.off, SIZE_BYTES[Size(insn.code & SIZE_MASK)])
                if key in mapping:
                    todo.append((node, mapping[key]))
        for node, build in todo:
            pl.replace(node, build(node.insn))
        if opts.get("epilogue"):
            for node in list(pl):
                if KIND_OF[node.insn.code] == Kind.EXIT:
                    pl.prepend(node, list(opts["epilogue"]))
        if opts.get("prologue"):
            pl.append(pl.head, list(opts["prologue"]))


PASS = CtxAccess
