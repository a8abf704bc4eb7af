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
from this kernel's BTF; it is refused for a program type whose context is
not ``__sk_buff`` (``PassContext(prog_type=...)``; without one, a socket
filter is assumed).  When the nodes carry the verifier's facts, the context
loads are the ones whose ``ptr_type`` is the context.  The `kernel` pass does
the kernel's whole conversion, every field and program type it knows.
"""

from __future__ import annotations

from typing import Callable, ClassVar

from bpfpatch.isa import KIND_OF, Insn, Kind
from bpfpatch.isa.opcodes import SIZE_BYTES, SIZE_MASK, AluOp, InsnClass, Size, Source
from bpfpatch.analysis.facts import RegType
from bpfpatch.errors import PatchError
from bpfpatch.passes.base import PassContext
from bpfpatch.passes.facts import facts_of, has_facts
from bpfpatch.progtype import ProgType, prog_type_of
from bpfpatch.patch import PatchList

Builder = Callable[[Insn], list[Insn]]
#: Program types whose context is struct __sk_buff (the shipped mapping's).
SKBUFF_TYPES = frozenset({ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.SCHED_ACT, ProgType.CGROUP_SKB,
                          ProgType.LWT_IN, ProgType.LWT_OUT, ProgType.LWT_XMIT, ProgType.SK_SKB})
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
            if ctx.prog_type is not None and prog_type_of(ctx.prog_type) not in SKBUFF_TYPES:
                raise PatchError(
                    f"ctx: the shipped mapping is for __sk_buff; a {prog_type_of(ctx.prog_type).name.lower()} "
                    "program has another context (give a mapping, or use --pass kernel)")
            from bpfpatch.passes.ctx_skbuff import skbuff_mapping

            mapping = skbuff_mapping()
        todo = []
        if has_facts(pl):  # the verifier's word on which loads go through the context
            found = ((n, frozenset({n.insn.src}) if (f := facts_of(n)) is not None
                      and f.ptr_type == RegType.PTR_TO_CTX else frozenset()) for n in pl)
        else:
            found = ctx_registers(pl)
        for node, regs in found:
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
