"""The verifier's analysis of an object's program with what this machine's kernel tells it.

`analyze_object_program` is `bpfpatch.analysis.verifier.analyze` as ``bpfpatch
analyze`` and ``check`` run it: the context layouts of the running kernel's BTF
(the uapi ones without it), kfunc prototypes and kernel struct members read at
first need, a tp_btf / fentry / lsm section's context from its attach target,
the subprograms' prototypes from the object's BTF (a global function is
verified on its own; libbpf loads a hidden one as static), and the program's
CO-RE field offsets and field-exists checks applied against the running
kernel's BTF, as libbpf applies them before the verifier sees the program.
"""

from __future__ import annotations

from typing import Any, Callable

from bpfpatch.analysis.funcinfo import SubprogFunc
from bpfpatch.analysis.verifier import Analysis, analyze
from bpfpatch.btf.core import relocated_offsets
from bpfpatch.btf.ctxargs import section_ctx_layout
from bpfpatch.btf.funcs import subprog_funcs
from bpfpatch.btf.vmlinux import kernel_types
from bpfpatch.kernel.ctxlayout import install_kernel_layouts
from bpfpatch.program import Program
from bpfpatch.progtype import prog_type_of


def object_subprog_funcs(obj: Any, program: Program, prog_type: Any) -> dict[int, SubprogFunc] | None:
    """Prototypes of `program`'s subprograms from `obj`'s BTF and the program's func_info (None without them)."""
    if obj is None or obj.btf is None or not program.func_info:
        return None
    funcs = subprog_funcs(obj.btf, [(f.insn_off, f.type_id) for f in program.func_info], prog_type_of(prog_type))
    # libbpf loads a hidden global function (usdt.bpf.h's bpf_usdt_arg) as static: verified in its callers' state
    return {k: SubprogFunc(f.start, f.name, False) if f.is_global and f.name in obj.hidden_funcs else f
            for k, f in funcs.items()}


def co_re_applied(program: Program, obj: Any) -> Program:
    """`program` as the verifier gets it from libbpf: its CO-RE field offsets and field-exists checks applied
    against the running kernel's BTF (an object built against another vmlinux.h reads other offsets); as it
    is without the kernel's BTF, CO-RE records or the object's BTF."""
    if obj is None or obj.btf is None or not program.core_relos or kernel_types() is None:
        return program
    return relocated_offsets(program, obj.btf, kernel_types())


def analyze_object_program(program: Program, obj: Any, prog_type: Any, *, section: str | None = None,
                           strict: bool = False, **options: Any) -> Analysis:
    """`analyze` `program` (linked, of the ELF object `obj`, or None for raw input) as the kernel here would.

    `strict`: a section whose attach target the kernel's BTF lacks is an `ElfError` naming it, as libbpf
    refuses to load it.  `options` go to `analyze` (``budget``, ``keep_states``, ``log``)."""
    install_kernel_layouts()
    program = co_re_applied(program, obj)
    ctx = section_ctx_layout(kernel_types(), program.meta.get("section") or section or "", strict=strict)
    return analyze(program, prog_type, kernel_types=kernel_types, funcs=object_subprog_funcs(obj, program, prog_type),
                   ctx_layout=ctx, **options)


def object_stack_depths(obj: Any) -> Callable[[Program, int], "int | None"]:
    """The verifier's stack depth of each function of `obj`, as a function of (section's program, first slot).

    For ``ctx.options["blind"]["stack_depth"]`` (`bpfpatch.passes.blind.verified_depth`):
    on first use every section with a program type is linked with its ``.text``
    callees (`bpfpatch.elf.link.link_program`) and analyzed as the kernel here
    would (`analyze_object_program`); a function's depth is the deepest its
    callers' verified paths gave it (the kernel's ``subprog_info[].stack_depth``,
    rounded to 8 bytes), None where no section that loads reaches it.
    """
    from bpfpatch.elf.link import LINKED_FROM, link_program
    from bpfpatch.errors import BpfPatchError
    from bpfpatch.progtype import UnknownProgType

    table: dict[tuple[str, int], int] = {}
    done: list[bool] = []

    def fill() -> None:
        done.append(True)
        for section in obj.programs:
            try:
                ptype = prog_type_of(section)
            except UnknownProgType:
                continue  # .text and untyped sections: reached only through their callers
            try:
                linked = link_program(obj, section)
                facts = analyze_object_program(linked, obj, ptype, keep_states=False).aux
            except BpfPatchError:
                continue  # a section the kernel would refuse: no depth from it
            for sec, start, end, at in linked.meta[LINKED_FROM]:
                for k in range(start, end):
                    aux = facts[at + k - start]
                    if aux is not None and aux.seen:
                        table[(sec, k)] = max(table.get((sec, k), 0), aux.stack_depth)

    def depth(program: Program, slot: int) -> "int | None":
        if not done:
            fill()
        return table.get((program.meta.get("section", program.name), slot))

    return depth


def for_object(ctx: Any, obj: Any, passes: Any) -> Any:
    """`ctx` (a `bpfpatch.passes.PassContext`) with what `passes` may ask of the object `obj`'s analysis:
    for ``blind``, `object_stack_depths` (unless the caller gave its own).  Returns `ctx`."""
    names = {p if isinstance(p, str) else getattr(p, "name", "") for p in passes}
    if "blind" in names:
        ctx.options.setdefault("blind", {}).setdefault("stack_depth", object_stack_depths(obj))
    return ctx


__all__ = ["analyze_object_program", "co_re_applied", "for_object", "object_stack_depths", "object_subprog_funcs"]
