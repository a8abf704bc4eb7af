"""Whether two BTF types are compatible the way libbpf asks it of a typed ``__ksym`` (``bpf_core_types_are_compat``).

libbpf resolves ``extern const int bpf_prog_active __ksym`` to the kernel's ``VAR`` of that name
and refuses the object when the declared type does not match the kernel's ("extern (var ksym)
'bpf_prog_active': incompatible types").  The rule (tools/lib/bpf/relo_core.c,
``__bpf_core_types_are_compat``) is shallow: after typedefs and qualifiers are skipped on both
sides, the kinds must be equal (any enum matches any enum); structs, unions, enums and forward
declarations then match whatever their members; integers match unless either is a bitfield-like
integer (a nonzero bit offset); pointers and arrays compare what they point at or hold; function
prototypes compare their parameter counts, each parameter, and the return type.  Names are not
compared (the caller matched the variable's name).

    >>> types_are_compat(local_btf, local_id, kernel_types(), kernel_id)   # doctest: +SKIP
    True
"""

from __future__ import annotations

from bpfpatch.btf.types import MODIFIERS, BtfKind, BtfType, TypeLookup
from bpfpatch.errors import ElfError

_ENUMS = {BtfKind.ENUM, BtfKind.ENUM64}
#: Kinds that match on kind alone.
_SHALLOW = {BtfKind.UNKN, BtfKind.STRUCT, BtfKind.UNION, BtfKind.ENUM, BtfKind.FWD, BtfKind.ENUM64}
#: libbpf's bounds: pointer/array/return-type steps, and nested prototype parameters.
_DEPTH, _LEVEL = 32, 32

_VOID = BtfType(0, BtfKind.UNKN, "void", 0, 0)


def _type(btf: TypeLookup, type_id: int) -> BtfType:
    return _VOID if type_id == 0 else btf.type(type_id)


def _skip(btf: TypeLookup, type_id: int) -> tuple[int, BtfType]:
    """(id, type) past typedefs and qualifiers (libbpf's ``skip_mods_and_typedefs``)."""
    t = _type(btf, type_id)
    for _ in range(btf.type_count):
        if t.kind not in MODIFIERS:
            return type_id, t
        type_id = t.size_or_type
        t = _type(btf, type_id)
    raise ElfError(f"BTF type {type_id}: a loop of typedefs or qualifiers", section=".BTF")


def _kinds_match(a: BtfType, b: BtfType) -> bool:
    return a.kind == b.kind or (a.kind in _ENUMS and b.kind in _ENUMS)


def types_are_compat(local: TypeLookup, local_id: int, target: TypeLookup, target_id: int, level: int = _LEVEL) -> bool:
    """Is `local`'s type `local_id` compatible with `target`'s type `target_id` (libbpf's rule, above)?

    Typedefs and qualifiers are skipped first on both sides.  `local` is the object's BTF (`bpfpatch.btf.Btf`), `target` the kernel's (`bpfpatch.btf.vmlinux.KernelTypes`
    or a `Btf`).  Where libbpf gives up (recursion deeper than its bounds, an unexpected kind) this
    answers False, as libbpf then refuses too.
    """
    # libbpf first compares the kinds of the ids it is given, which its callers have already taken past
    # typedefs and qualifiers: the loop's first step is that comparison, for any ids.
    for _ in range(_DEPTH):
        local_id, lt = _skip(local, local_id)
        target_id, tt = _skip(target, target_id)
        if not _kinds_match(lt, tt):
            return False
        kind = lt.kind
        if kind in _SHALLOW:
            return True
        if kind == BtfKind.INT:  # a bitfield-like integer (bit offset != 0) is refused; any others match
            return (lt.extra[0] >> 16) & 0xFF == 0 and (tt.extra[0] >> 16) & 0xFF == 0
        if kind == BtfKind.PTR:
            local_id, target_id = lt.size_or_type, tt.size_or_type
        elif kind == BtfKind.ARRAY:
            local_id, target_id = lt.extra[0], tt.extra[0]
        elif kind == BtfKind.FUNC_PROTO:
            if len(lt.members) != len(tt.members):
                return False
            for (_, lp), (_, tp) in zip(lt.members, tt.members):
                if level <= 0 or not types_are_compat(local, _skip(local, lp)[0], target, _skip(target, tp)[0], level - 1):
                    return False
            local_id, target_id = lt.size_or_type, tt.size_or_type  # then the return type
        else:
            return False
    return False


__all__ = ["types_are_compat"]
