"""Subprogram prototypes from BTF: which subprograms are global, and their argument types.

The kernel verifies a *global* subprogram (``BTF_FUNC_GLOBAL`` linkage in the
program's func_info) on its own, once, from a state made of its BTF argument
types (``btf_prepare_func_args``, ``do_check_common``); a caller only checks
that its registers match those types (``btf_check_func_arg_match``) and sees
R0 as an unknown scalar.  `SubprogFunc` is that prototype in the analysis'
terms; the BTF layer (`bpfpatch.btf.funcs`) makes them from a program's BTF
and func_info, and `bpfpatch.analysis.verifier.analyze` takes them keyed by
the subprogram's first instruction.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ArgKind(Enum):
    """How the kernel reads one global-function argument (``enum bpf_arg_type`` of a subprogram)."""

    SCALAR = "scalar"  # ARG_ANYTHING: an int or enum
    CTX = "ctx"  # ARG_PTR_TO_CTX: a pointer to the program type's context, or tagged arg:ctx
    MEM = "mem"  # ARG_PTR_TO_MEM (| PTR_MAYBE_NULL unless arg:nonnull): a sized pointee
    BTF_ID = "btf_id"  # ARG_PTR_TO_BTF_ID | PTR_TRUSTED: tagged arg:trusted
    DYNPTR = "dynptr"  # ARG_PTR_TO_DYNPTR | MEM_RDONLY: a struct bpf_dynptr *
    ARENA = "arena"  # ARG_PTR_TO_ARENA: tagged arg:arena


@dataclass(frozen=True)
class FuncArg:
    """One argument: its kind, the pointee size (MEM), whether NULL may be passed, the kernel struct (BTF_ID)."""

    kind: ArgKind
    size: int = 0
    nullable: bool = False
    btf_name: str = ""


@dataclass(frozen=True)
class SubprogFunc:
    """A subprogram's prototype: its first instruction, name, linkage and arguments.

    ``error`` is the kernel's message where ``btf_prepare_func_args`` refuses
    the prototype of a global function (unsupported argument, no int return):
    a call to it, or its verification, is then refused with that message.
    """

    start: int
    name: str
    is_global: bool
    args: tuple[FuncArg, ...] = ()
    error: str = ""


__all__ = ["ArgKind", "FuncArg", "SubprogFunc"]
