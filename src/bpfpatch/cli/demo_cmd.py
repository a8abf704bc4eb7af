"""`bpfpatch demo`: the main job on the sample that ships with the package.

Reads ``samples/sample.o`` (clang-built socket filter), runs the kernel's
rewriting passes on ONE patch list, linearizes once, shows what changed, and
-- where the kernel allows bpf() -- proves the rewrite loads and behaves the
same.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bpfpatch.cli.app import app
from bpfpatch.program import Program


def sample_path() -> Path:
    return Path(str(resources.files("bpfpatch") / "samples" / "sample.o"))


def _read_sample(path: Path) -> Program:
    from bpfpatch.loader import read_program

    # Linked like libbpf would: the socket program, the .text function it calls, its map.
    return read_program(path, section="socket", linked=True)


def _disasm(program: Program) -> list[str]:
    from bpfpatch.asm import disasm

    return disasm(program, style="llvm")


@app.command("demo")
def demo(passes: str = "div-guard,dce", aux_reg: str = "auto") -> None:
    """Rewrite the shipped sample with the kernel's passes and check the result."""
    from bpfpatch.passes import PassContext, run_passes

    console = Console()
    path = sample_path()
    prog = _read_sample(path)
    console.print(f"[bold]{path.name}[/bold], section [cyan]socket[/cyan]: {len(prog.insns)} instructions, "
                  f"{len(prog.slots)} slots, subprograms at {prog.subprogs}")
    names = [p for p in passes.split(",") if p]
    t = time.perf_counter()
    out = run_passes(prog, names, PassContext(seed=1, aux_reg=aux_reg if aux_reg == "auto" else int(aux_reg)))
    dt = time.perf_counter() - t
    console.print(f"passes {', '.join(names)} on one patch list, one linearize: "
                  f"{len(prog.slots)} -> {len(out.slots)} slots in {dt * 1000:.1f} ms")
    before, after = _disasm(prog), _disasm(out)
    table = Table("old", "before", "new", "after", title="where the rewrite touched the program")
    insn_slots = prog.insn_slots().tolist()
    new_slots = out.insn_slots().tolist()
    shown = 0
    for i, s in enumerate(insn_slots):
        lo = int(out.idx_map[s])
        hi = int(out.idx_map[insn_slots[i + 1]]) if i + 1 < len(insn_slots) else len(out.slots)
        new_lines = [after[new_slots.index(k)] for k in range(lo, hi) if k in new_slots]
        if new_lines != [before[i]] and shown < 6:
            table.add_row(str(s), before[i], f"{lo}..{hi - 1}", "\n".join(new_lines))
            shown += 1
    console.print(table)
    _kernel_check(console, path, names, aux_reg)


def _kernel_check(console: Console, path: Path, names: list[str], aux_reg: str) -> None:
    """Load the sample through libbpf (its map created, its call linked), rewrite what libbpf
    loads with the same passes, and check both on the kernel."""
    from bpfpatch.kernel.check import Relocated, check
    from bpfpatch.kernel.libbpf import load_object
    from bpfpatch.passes import PassContext, run_passes

    try:
        with load_object(path) as obj:
            rel = Relocated.of(obj, "sample_filter")
        out = run_passes(Program.from_bytes(rel.insns, validate=False), names,
                         PassContext(seed=1, aux_reg=aux_reg if aux_reg == "auto" else int(aux_reg)))
        report = check(path, Relocated(out.to_bytes(), rel.maps), program="sample_filter", seconds=2)
    except Exception as exc:  # noqa: BLE001 - the demo reports, it does not fail on the kernel
        console.print(f"kernel check: could not run ({exc})")
        return
    for line in report.lines():
        console.print(f"kernel check (loaded through libbpf): {line}")
