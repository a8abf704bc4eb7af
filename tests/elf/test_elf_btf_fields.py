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
