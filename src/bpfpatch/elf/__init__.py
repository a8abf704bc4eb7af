"""BPF ELF objects: read programs with relocations and BTF; link one for loading."""

from bpfpatch.elf.link import link_program
from bpfpatch.elf.reader import ElfObject, Relocation, Symbol, read_object

__all__ = ["ElfObject", "Relocation", "Symbol", "link_program", "read_object"]
