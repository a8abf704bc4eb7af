"""Kernel functions (kfuncs) and kernel struct layouts as the verifier sees them, as data.

A kfunc call (``call`` with src = BPF_PSEUDO_KFUNC_CALL) names its function by
BTF id: its prototype lives in the running kernel's BTF, its rules (acquire,
release, may return NULL, iterator new/next/destroy) in the kernel's
``BTF_ID_FLAGS`` sets (`kfuncs_table.KFUNC_FLAGS`, generated from the source).
The analysis sits below the BTF reader, so it takes both through `KernelTypes`,
an object the upper layers provide (`bpfpatch.btf.vmlinux.kernel_types` reads
/sys/kernel/btf/vmlinux); without one, a kfunc returns an unknown scalar.

Argument and return kinds are strings:

- ``"void"``, ``"scalar"``: no value / an integer;
- ``"ptr:<struct>"``: a pointer to a kernel struct (PTR_TO_BTF_ID);
- ``"mem"``: a pointer to anything else (void *, int *, char *);
- ``"dynptr"``, ``"iter:<name>"``: a ``struct bpf_dynptr *`` / ``struct bpf_iter_<name> *`` on the stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bpfpatch.analysis.kfuncs_table import KFUNC_FLAGS


@dataclass(frozen=True)
class KfuncArg:
    """One kfunc parameter: its name (the suffix rules: ``__uninit``, ``__sz``, ``__k``, ...) and kind."""

    name: str
    kind: str


@dataclass(frozen=True)
class KfuncProto:
    """One kfunc: name, return kind, parameters, and its KF_* flags."""

    name: str
    ret: str
    args: tuple[KfuncArg, ...] = ()
    flags: frozenset[str] = frozenset()

    @property
    def acquires(self) -> bool:
        return "KF_ACQUIRE" in self.flags

    @property
    def releases(self) -> bool:
        return "KF_RELEASE" in self.flags

    @property
    def ret_null(self) -> bool:
        return "KF_RET_NULL" in self.flags

    @property
    def ret_struct(self) -> str:
        """The struct a ``ptr:`` return points to ("" otherwise)."""
        return self.ret[4:] if self.ret.startswith("ptr:") else ""


def kfunc_flags(name: str) -> frozenset[str]:
    """The KF_* flags the kernel registers for kfunc `name` (empty if it registers none)."""
    return frozenset(KFUNC_FLAGS.get(name, ()))


class KernelTypes(Protocol):
    """What the analysis asks of the kernel's BTF."""

    def kfunc(self, btf_id: int) -> KfuncProto | None:
        """The kfunc with BTF id `btf_id` (None: not a function)."""

    def member(self, struct: str, off: int, size: int) -> str | None:
        """What a `size`-byte load at `off` of kernel struct `struct` reads: ``"ptr:<struct>"``,
        ``"scalar"``, or None when the struct has no member there."""

    # Optional: ``struct_name(btf_id)``, the name of the kernel struct `btf_id` (what ``bpf_rdonly_cast`` casts to).


__all__ = ["KernelTypes", "KfuncArg", "KfuncProto", "kfunc_flags"]
