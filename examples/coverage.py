"""Count how often every basic block of one program section runs: `python coverage.py IN.o SECTION OUT.o`.

The kit: FlowGraph (blocks, liveness), builders, ObjectEditor (global data + relocations).
"""
import sys

from bpfpatch import PatchList
from bpfpatch.analysis.cfg import FlowGraph
from bpfpatch.elf import read_object
from bpfpatch.elf.addmap import ObjectEditor
from bpfpatch.elf.writer import build_object
from bpfpatch.isa import Size, build as b
from bpfpatch.patch import PatchInsn


def instrument(src: str, section: str) -> tuple[bytes, int]:
    obj = read_object(src)
    pl = PatchList(obj.programs[section])
    graph = FlowGraph(pl)
    for k, block in enumerate(graph.blocks):
        ra, rb = graph.free_registers(block.first, 2)          # dead here: no spill needed
        pl.prepend(block.first, [PatchInsn(b.ld_imm64(ra, 8 * k), aux="counter"),  # &counts[k]
                                 b.mov64_imm(rb, 1), b.atomic_add(Size.DW, ra, rb, 0)])
    new = pl.linearize()
    editor = ObjectEditor(build_object(obj, {section: new}))
    editor.add_data("counts", 8 * len(graph.blocks))       # u64 counts[n] in .data.counts
    editor.add_relocations(section, [s for s, a in enumerate(new.aux) if a == "counter"], "counts")
    return editor.to_bytes(), len(graph.blocks)


if __name__ == "__main__":
    data, n = instrument(sys.argv[1], sys.argv[2])
    open(sys.argv[3], "wb").write(data)
    print(f"{n} block counters in map .data.counts")
