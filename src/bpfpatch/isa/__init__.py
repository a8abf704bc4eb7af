"""The eBPF instruction set, by concern.

* `opcodes` -- the opcode fields as enums and masks;
* `kinds`   -- what each opcode is (`Kind`, one 256-entry table);
* `refs`    -- the one table of references: where a target lives (`Target`), what an instruction
  refers to (`Ref`);
* `slots`   -- the kernel's ``struct bpf_insn`` as a NumPy dtype, bytes <-> slots;
* `insn`    -- the `Insn` value and its slot words;
* `build`   -- the named constructors (``add64_imm``, ``jmp_reg``, ...), range-checked;
* `rules`   -- the validity rules (`validate_slots`).
"""

from bpfpatch.isa.insn import Insn, insn_of_words, insn_words, insns_to_slots, slots_to_insns
from bpfpatch.isa.kinds import KIND, KIND_OF, Kind
from bpfpatch.isa.opcodes import (
    AX_REG,
    CALL,
    EXIT,
    GOTOL,
    INVERTED_JMP,
    JA,
    LD_IMM64,
    MAY_GOTO,
    AluOp,
    AtomicOp,
    CallSrc,
    InsnClass,
    JmpOp,
    Mode,
    PseudoSrc,
    Reg,
    Size,
    Source,
)
from bpfpatch.isa.refs import (
    INSTRUCTION_REFS,
    SUBPROG_REFS,
    Ref,
    Target,
    branch_offsets,
    check_jump_targets,
    is_subprog_ref,
    may_target_slots,
    ref_of,
    refs_of_words,
    subprog_ref_mask,
    target_of,
)
from bpfpatch.isa.rules import validate_slots
from bpfpatch.isa.slots import (
    SLOT_DTYPE,
    SLOT_SIZE,
    STRUCT_ORDER,
    ByteOrder,
    decode_slots,
    distinct_bytes,
    dst_of,
    encode_slots,
    insn_starts,
    opcodes,
    pack_regs,
    slot_rows,
    slots_from_rows,
    src_of,
)

__all__ = [
    "AX_REG", "CALL", "EXIT", "GOTOL", "INSTRUCTION_REFS", "INVERTED_JMP", "JA", "LD_IMM64", "MAY_GOTO",
    "SUBPROG_REFS", "AluOp", "AtomicOp", "ByteOrder", "CallSrc", "Insn", "InsnClass", "JmpOp", "KIND",
    "KIND_OF", "Kind", "Mode", "PseudoSrc", "Ref", "Reg", "SLOT_DTYPE", "SLOT_SIZE", "STRUCT_ORDER", "Size", "Source",
    "Target", "branch_offsets", "check_jump_targets", "decode_slots", "distinct_bytes", "dst_of",
    "encode_slots", "insn_of_words", "insn_starts", "insn_words", "insns_to_slots", "is_subprog_ref",
    "may_target_slots", "opcodes", "pack_regs", "ref_of", "refs_of_words", "slot_rows", "slots_from_rows", "slots_to_insns",
    "src_of", "subprog_ref_mask", "target_of", "validate_slots",
]
