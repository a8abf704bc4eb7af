"""BPF ELF objects: read programs with relocations and BTF; link one for loading."""

from bpfpatch.elf.link import link_program
from bpfpatch.elf.reader import ElfObject, Relocation, Symbol, read_object
from bpfpatch.elf.writer import build_object, write_object

__all__ = ["ElfObject", "Relocation", "Symbol", "build_object", "link_program", "read_object", "write_object"]
