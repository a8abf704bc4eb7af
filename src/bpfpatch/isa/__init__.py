"""The eBPF instruction set: opcode enums, the `Insn` value, slot encoding."""

from bpfpatch.isa.encoding import (
    KIND,
    KIND_OF,
    SLOT_DTYPE,
    SLOT_SIZE,
    Kind,
    branch_offsets,
    check_jump_targets,
    decode_slots,
    distinct_bytes,
    dst_of,
    pack_regs,
    slot_rows,
    src_of,
    encode_slots,
    insn_starts,
    insns_to_slots,
    opcodes,
    slots_from_rows,
    slots_to_insns,
    validate_slots,
)
from bpfpatch.isa.insn import Insn, jump_kind
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

__all__ = [
    "AX_REG", "CALL", "EXIT", "GOTOL", "INVERTED_JMP", "JA", "LD_IMM64", "MAY_GOTO",
    "AluOp", "AtomicOp", "CallSrc", "Insn", "InsnClass", "JmpOp", "KIND", "KIND_OF", "Kind", "Mode",
    "PseudoSrc", "Reg", "SLOT_DTYPE", "SLOT_SIZE", "Size", "Source", "branch_offsets", "distinct_bytes", "opcodes",
    "check_jump_targets", "decode_slots", "dst_of", "pack_regs", "slot_rows", "slots_from_rows", "src_of", "encode_slots", "insn_starts", "insns_to_slots",
    "jump_kind", "slots_to_insns", "validate_slots",
]
