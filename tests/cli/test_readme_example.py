"""The README's "Writing a pass" example works as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bpfpatch import Insn, Program

README = Path(__file__).resolve().parents[2] / "README.md"


def _example_source() -> str:
    text = README.read_text()
    block = re.search(r"### Writing a pass.*?```python\n(.*?)```", text, re.S)
    assert block, "README lost its pass example"
    return block.group(1)


@pytest.mark.kernel
def test_count_blocks_example_counts():
    from bpfpatch.kernel import load_program

    # r0 = 0; r1 = 3; loop: r0 += 1; r1 -= 1; if r1 != 0 goto loop; r0 = r9; exit
    program = Program.from_insns([Insn(0xB7, 0), Insn(0xB7, 1, 0, 0, 3), Insn(0x07, 0, 0, 0, 1),
                                  Insn(0x07, 1, 0, 0, -1), Insn(0x55, 1, 0, -3, 0), Insn(0xBF, 0, 9), Insn(0x95)])
    scope = {"program": program}
    exec(_example_source(), scope)
    with load_program(scope["counted"]) as p:
        # entry block + 3 loop iterations + the block after the loop
        assert p.test_run(bytes(64)).retval == 5
