"""Text assembly both ways: llvm-objdump syntax and the verifier-log syntax."""

from bpfpatch.asm.assemble import assemble, outside_calls, parse_insn
from bpfpatch.asm.disasm import STYLES, disasm, format_insn, listing

__all__ = ["STYLES", "assemble", "disasm", "format_insn", "listing", "outside_calls", "parse_insn"]
