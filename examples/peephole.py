"""A peephole optimizer: delete moves of a register to itself, `r += 0` and `goto +0`.

    python peephole.py IN.o OUT.o      (or: bpfpatch patch IN.o -o OUT.o --pass peephole:Peephole)
"""
import sys

from bpfpatch.elf.rewrite import rewrite_object
from bpfpatch.isa import build as b


class Peephole:
    """Before: ``r1 = r1; r2 += 0; goto +0; r0 = 1`` -- after: ``r0 = 1``."""

    name = "peephole"

    def run(self, pl, ctx) -> None:
        self.deleted = 0
        for node in list(pl):
            i = node.insn
            useless = i in (b.mov64_reg(i.dst, i.dst), b.add64_imm(i.dst, 0), b.sub64_imm(i.dst, 0))
            useless = useless or (i.code == b.ja(0).code and node.target == node.next)   # goto +0
            if useless and node.next is not None:       # jumps to it land on the next node
                pl.delete(node)
                self.deleted += 1


if __name__ == "__main__":
    p = Peephole()
    rewrite_object(sys.argv[1], sys.argv[2], [p])
    print(f"deleted {p.deleted} instructions")
