"""BPF ELF objects: a model (`model`), a reader, a linker for loading, a writer.

Imports point one way: ``model`` <- ``link`` <- ``reader``; ``writer`` reads
only the model.  Nothing here imports the kernel interface or the CLI.
"""

from bpfpatch.elf.link import link_program
from bpfpatch.elf.model import ElfModel, MapRefs, MapSpec, Relocation, Relocations, Symbol, Symbols
from bpfpatch.elf.reader import ElfObject, read_object
from bpfpatch.elf.writer import build_object, write_object

__all__ = ["ElfModel", "ElfObject", "MapRefs", "MapSpec", "Relocation", "Relocations", "Symbol", "Symbols",
           "build_object", "link_program", "read_object", "write_object"]
