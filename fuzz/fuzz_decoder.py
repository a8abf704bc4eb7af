#!/usr/bin/env python3
"""atheris target: the decoder, the assembler and the ELF reader on arbitrary bytes.

    make fuzz            # 10 minutes, corpus seeded from the shipped sample

Anything but bpfpatch's typed errors is a crash.
"""

import sys

import atheris

with atheris.instrument_imports():
    from bpfpatch import BpfPatchError, Program
    from bpfpatch.asm import assemble
    from bpfpatch.elf import read_object
    from bpfpatch.patch import PatchList


def one_input(data: bytes) -> None:
    try:
        prog = Program.from_bytes(data[: len(data) - len(data) % 8])
        PatchList(prog).linearize()
    except BpfPatchError:
        pass
    try:
        read_object(data)
    except BpfPatchError:
        pass
    try:
        assemble(data.decode("utf-8", errors="replace"))
    except BpfPatchError:
        pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
