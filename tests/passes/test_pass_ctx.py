"""ctx: the shipped __sk_buff mapping equals the kernel's own conversion; user mappings work."""

from __future__ import annotations

import pytest

from bpfpatch import Insn, Program
from bpfpatch.isa import decode_slots, slot_rows
from bpfpatch.passes import PassContext, run_passes
from bpfpatch.passes.ctx_skbuff import SKBUFF_FIELDS, VMLINUX_BTF

needs_btf = pytest.mark.skipif(not VMLINUX_BTF.exists(), reason="no /sys/kernel/btf/vmlinux on this machine")


def _reader() -> Program:
    # r6 = r1 (context copy); load every mapped field through the copy; return 0
    loads = [Insn(0x61, 2 + (i % 3), 6, off, 0) for i, (off, _size) in enumerate(SKBUFF_FIELDS)]
    return Program.from_insns([Insn(0xBF, 6, 1)] + loads + [Insn(0xB7, 0), Insn(0x95)])


@needs_btf
@pytest.mark.kernel
def test_skbuff_loads_equal_kernel_xlated():
    from bpfpatch.kernel import load_program

    prog = _reader()
    with load_program(prog) as p:
        kernel = slot_rows(decode_slots(p.xlated()))
    assert slot_rows(run_passes(prog, ["ctx"]).slots) == kernel


def test_user_mapping_prologue_epilogue():
    mapping = {(0, 4): lambda i: [Insn(0x61, i.dst, i.src, 100, 0), Insn(0x07, i.dst, 0, 0, 1)]}
    prog = Program.from_insns([Insn(0x61, 0, 1, 0, 0), Insn(0x61, 2, 3, 0, 0), Insn(0x95)])
    ctx = PassContext(options={"ctx": {"mapping": mapping, "prologue": [Insn(0xB7, 5, 0, 0, 9)],
                                       "epilogue": [Insn(0x07, 0, 0, 0, 2)]}})
    out = run_passes(prog, ["ctx"], ctx).insns
    assert out == [Insn(0xB7, 5, 0, 0, 9), Insn(0x61, 0, 1, 100, 0), Insn(0x07, 0, 0, 0, 1),
                   Insn(0x61, 2, 3, 0, 0),  # r3 is not the context: untouched
                   Insn(0x07, 0, 0, 0, 2), Insn(0x95)]
