"""A big-program rewrite: 200,000 instructions, every division guarded, in one linear pass.

    python big_program.py [N]      -- builds, patches, linearizes and loads (as root) the program
"""
import sys
import time

from bpfpatch import PatchList, Program
from bpfpatch.isa import build as b


def build(n: int) -> Program:
    body = [b.mov64_imm(0, 1 << 20), b.mov64_imm(1, 2)]
    body += [b.div64_reg(0, 1) if k % 2 else b.add64_imm(0, 3) for k in range(n)]
    return Program.from_insns(body + [b.exit_insn()])


def guard(prog: Program) -> Program:
    pl = PatchList(prog)
    for node in pl:
        i = node.insn
        if i == b.div64_reg(i.dst, i.src):           # the kernel's divide-by-zero guard
            pl.replace(node, (b.jne_imm(i.src, 0, 2), b.xor32_reg(i.dst, i.dst), b.ja(1), i))
    return pl.linearize()


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    t = time.process_time()
    out = guard(build(n))
    print(f"{n} -> {len(out.slots)} slots in {time.process_time() - t:.2f} s CPU")
