"""Special fields read from an object's BTF: list heads and rbtree roots with their ``__contains`` tags.

tests/progs/btf/graph_roots.c (clang-built) holds them in a map value (as struct members) and in a
global data section (a variable, and an array of them); `graph_roots` gives each head's offset, the
struct it contains and that struct's node offset (what the kernel's ``bpf_list_pop_*`` /
``bpf_rbtree_first`` return: the struct, at the node's offset).  A data section's variable offsets
are libbpf's (clang leaves them 0 in the object): global heads are checked on the BTF libbpf loaded,
by the selftest objects of tests/kernel/test_kernel_btfctx.py (linked_list.o, refcounted_kptr.o).
"""

from __future__ import annotations

from conftest import PROGS, compile_bpf

from bpfpatch.btf.fields import graph_roots
from bpfpatch.btf.types import BtfKind
from bpfpatch.elf import read_object


def test_graph_roots_in_a_map_value(objdir):
    btf = read_object(compile_bpf(PROGS / "btf" / "graph_roots.c", objdir)).btf
    value = btf.find(BtfKind.STRUCT, "map_value")
    assert graph_roots(btf, value.id) == ((8, "foo", 32), (24, "foo", 56))
    assert graph_roots(btf, btf.find(BtfKind.STRUCT, "foo").id) == ()  # nodes, no heads


def _first_by_scan(btf, kind, name):
    """`Btf.find`'s reference: the first type of `kind` named `name` in id order."""
    return next((t for t in btf.types if t.kind == kind and t.name == name), None)


def test_find_is_the_first_type_of_its_kind_and_name(objdir):
    """`Btf.find` (an index) gives what a scan in id order gives, for every (kind, name) of clang-built
    and xdp-tools objects, and None for a name or kind that is not there."""
    import glob

    paths = [compile_bpf(PROGS / "btf" / "graph_roots.c", objdir)] + sorted(glob.glob("/usr/lib/x86_64-linux-gnu/bpf/*.o"))[:6]
    checked = 0
    for path in paths:
        btf = read_object(path).btf
        if btf is None:
            continue
        for t in btf.types:
            assert btf.find(t.kind, t.name) is _first_by_scan(btf, t.kind, t.name), (path, t.id)
            checked += 1
        assert btf.find(BtfKind.STRUCT, "no such struct here") is None
        struct = next(t for t in btf.types if t.kind == BtfKind.STRUCT and t.name)
        assert btf.find(BtfKind.UNION, struct.name) is _first_by_scan(btf, BtfKind.UNION, struct.name)
    assert checked > 100
