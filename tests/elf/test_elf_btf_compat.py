"""libbpf's type-compatibility rule (`bpfpatch.btf.compat.types_are_compat`, ``bpf_core_types_are_compat``),
on the types of tests/progs/btf/compat_types.c as clang emits them into BTF.

The rule is the one libbpf applies to a typed ``__ksym`` before loading (tests/elf/test_elf_link_libbpf.py
checks the linker against libbpf's own verdict on the running kernel's ``bpf_prog_active``): kinds after
typedefs and qualifiers, any integer with any integer, structs and unions by kind alone, pointers and arrays
by what they hold, prototypes by parameter count, parameters and return type.
"""

from __future__ import annotations

import pytest

from bpfpatch.btf.compat import types_are_compat
from bpfpatch.btf.types import BtfKind
from bpfpatch.elf import read_object
from conftest import PROGS, compile_bpf

COMPATIBLE = [
    ("v_int", "v_ulong"), ("v_int", "v_cv_int"), ("v_int_ptr", "v_long_ptr"), ("v_one", "v_other"),
    ("v_colour", "v_big"), ("v_arr_int", "v_arr_long"), ("v_takes_one", "v_takes_one_long"),
    ("v_void_ptr", "v_void_ptr"), ("v_gives_struct", "v_gives_struct"),
]
INCOMPATIBLE = [
    ("v_int", "v_int_ptr"), ("v_int", "v_one"), ("v_one", "v_either"), ("v_int", "v_colour"),
    ("v_int_ptr", "v_int_ptr_ptr"), ("v_int_ptr", "v_void_ptr"), ("v_arr_int", "v_arr_one"),
    ("v_takes_one", "v_takes_two"), ("v_gives_struct", "v_gives_int_ptr"), ("v_int", "v_arr_int"),
]


@pytest.fixture(scope="module")
def btf(tmp_path_factory):
    return read_object(compile_bpf(PROGS / "btf" / "compat_types.c", tmp_path_factory.mktemp("compat"))).btf


def _type_of(btf, var: str) -> int:
    v = btf.find(BtfKind.VAR, var)
    assert v is not None, var
    return v.size_or_type


@pytest.mark.parametrize("a, b", COMPATIBLE)
def test_compatible_both_ways(btf, a, b):
    assert types_are_compat(btf, _type_of(btf, a), btf, _type_of(btf, b))
    assert types_are_compat(btf, _type_of(btf, b), btf, _type_of(btf, a))


@pytest.mark.parametrize("a, b", INCOMPATIBLE)
def test_incompatible_both_ways(btf, a, b):
    assert not types_are_compat(btf, _type_of(btf, a), btf, _type_of(btf, b))
    assert not types_are_compat(btf, _type_of(btf, b), btf, _type_of(btf, a))


def test_a_bitfield_like_integer_is_refused(btf):
    """An INT whose encoding has a bit offset (an old-style bitfield integer) matches no integer; clang emits
    none for C bitfields (those are members with bit offsets), so the test makes one."""
    import dataclasses

    int_id = btf.resolve(_type_of(btf, "v_int")).id
    t = btf.type(int_id)
    odd = dataclasses.replace(t, extra=(t.extra[0] | 3 << 16,))
    btf.types[int_id] = odd
    try:
        assert not types_are_compat(btf, int_id, btf, btf.resolve(_type_of(btf, "v_ulong")).id)
    finally:
        btf.types[int_id] = t
