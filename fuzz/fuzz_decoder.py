#!/usr/bin/env python3
"""atheris target: every parser of bpfpatch on arbitrary bytes.

    make fuzz            # 10 minutes, corpus seeded from the shipped sample
    python fuzz/fuzz_decoder.py -seed=1 -runs=20000 fuzz/corpus   # what the test suite runs

The decoder and linearize, the assembler, the ELF reader with the linker and
the writer, BTF and .BTF.ext on their own.  Anything but bpfpatch's typed
errors (`BpfPatchError`) is a crash; so is a run that allocates without bound
(libFuzzer's -rss_limit_mb).
"""

import sys

import atheris

with atheris.instrument_imports():
    from bpfpatch import BpfPatchError, Program
    from bpfpatch.asm import assemble
    from bpfpatch.btf import Btf, parse_btf_ext
    from bpfpatch.elf import build_object, read_object
    from bpfpatch.patch import PatchList

_EMPTY_BTF = Btf(b"\x9f\xeb\x01\x00\x18\x00\x00\x00" + b"\x00" * 8 + b"\x00\x00\x00\x00\x01\x00\x00\x00" + b"\x00")


def one_input(data: bytes) -> None:
    try:
        prog = Program.from_bytes(data[: len(data) - len(data) % 8])
        PatchList(prog).linearize()
    except BpfPatchError:
        pass
    try:
        obj = read_object(data)
        build_object(obj, {name: PatchList(p).linearize() for name, p in obj.programs.items() if len(p.slots)})
        for name in obj.programs:
            if name != ".text":
                obj.linked_program(name)
    except BpfPatchError:
        pass
    try:
        assemble(data.decode("utf-8", errors="replace"))
    except BpfPatchError:
        pass
    try:
        Btf(data)
    except BpfPatchError:
        pass
    try:
        parse_btf_ext(data, _EMPTY_BTF.string)
    except BpfPatchError:
        pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
