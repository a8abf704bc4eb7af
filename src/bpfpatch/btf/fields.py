"""Special fields of a map value's BTF type (``btf_parse_fields``, kernel/bpf/btf.c): its kptrs, and its
list heads and rbtree roots (`graph_roots`).

A member whose pointer type carries the type tag ``kptr`` (``__kptr``, a
referenced kernel or program-allocated object), ``kptr_untrusted``
(``__kptr_untrusted``) or ``percpu_kptr`` (``__percpu_kptr``) is a kptr field;
the verifier types a load from it by the struct pointed to.  Nested structs
and arrays of them are searched too, as the kernel does.
"""

from __future__ import annotations

from bpfpatch.btf.types import BtfKind, TypeLookup

KPTR_TAGS = {"kptr": "ref", "kptr_untrusted": "untrusted", "percpu_kptr": "percpu"}
_MAX_NEST = 8  # the kernel's nesting limit is lower; this bounds the walk
_MAX_ELEMS = 1024


def _kptr_of(btf: TypeLookup, type_id: int) -> tuple[str, str] | None:
    """(kind, struct name) when `type_id` is a pointer tagged as a kptr."""
    t = btf.type(type_id)
    while t.kind in (BtfKind.TYPEDEF, BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT):
        t = btf.type(t.size_or_type)
    if t.kind != BtfKind.PTR:
        return None
    tag = btf.type(t.size_or_type)
    if tag.kind != BtfKind.TYPE_TAG or tag.name not in KPTR_TAGS:
        return None
    target = btf.resolve(tag.size_or_type)
    return KPTR_TAGS[tag.name], target.name


def kptr_fields(btf: TypeLookup, type_id: int) -> tuple[tuple[int, str, str], ...]:
    """``(byte offset, kind, struct name)`` of every kptr in the type `type_id` (a map's value type)."""
    out: list[tuple[int, str, str]] = []
    work = [(type_id, 0, 0)]
    while work:
        tid, base, depth = work.pop()
        t = btf.resolve(tid)
        if t.kind == BtfKind.ARRAY:
            elem, _, n = t.extra
            size = btf.size_of(elem)
            if depth < _MAX_NEST and size:
                work.extend((elem, base + k * size, depth + 1) for k in range(min(n, _MAX_ELEMS)))
            continue
        if t.kind not in (BtfKind.STRUCT, BtfKind.UNION):
            continue
        for _name, mtype, bits in t.members:
            off = base + bits // 8
            k = _kptr_of(btf, mtype)
            if k is not None:
                out.append((off, k[0], k[1]))
            elif depth < _MAX_NEST and btf.resolve(mtype).kind in (BtfKind.STRUCT, BtfKind.UNION, BtfKind.ARRAY):
                work.append((mtype, off, depth + 1))
    return tuple(sorted(out))


GRAPH_ROOTS = ("bpf_list_head", "bpf_rb_root")


def _contains_tags(btf: TypeLookup) -> dict[tuple[int, int], str]:
    """``__contains(struct, node)`` decl tags by (tagged type id, member index; -1 for a variable)."""
    out = {}
    for tid in range(1, btf.type_count):
        t = btf.type(tid)
        if t.kind == BtfKind.DECL_TAG and t.name.startswith("contains:"):
            out[(t.size_or_type, t.extra[0] if t.extra else -1)] = t.name
    return out


def _node_offset(btf: TypeLookup, tag: str) -> tuple[str, int] | None:
    """(struct, byte offset of its node member) a ``contains:<struct>:<node>`` tag names."""
    parts = tag.split(":")
    if len(parts) != 3:
        return None
    find = getattr(btf, "find", None)
    t = find(BtfKind.STRUCT, parts[1]) if find is not None else None
    if t is None:
        return None
    for name, _mtype, bits in t.members:
        if name == parts[2]:
            return parts[1], bits // 8
    return None


def graph_roots(btf: TypeLookup, type_id: int) -> tuple[tuple[int, str, int], ...]:
    """``(byte offset, contained struct, node offset)`` of every ``bpf_list_head`` / ``bpf_rb_root`` in the
    type `type_id` (a map's value type or a global data section; arrays of them too), from their
    ``__contains`` tags (``btf_parse_graph_root``: what a list pop or rbtree first returns is the struct, at
    the node's offset)."""
    tags = _contains_tags(btf)
    out: list[tuple[int, str, int]] = []
    work = [(type_id, 0, 0, "")]
    while work:
        tid, base, depth, tag = work.pop()
        t = btf.type(tid)
        if t.kind == BtfKind.DATASEC:
            for var_id, off, _size in t.members:
                work.append((btf.type(var_id).size_or_type, base + off, depth + 1, tags.get((var_id, -1), "")))
            continue
        t = btf.resolve(tid)
        if t.kind == BtfKind.ARRAY:
            elem, _, n = t.extra
            size = btf.size_of(elem)
            if depth < _MAX_NEST and size:
                work.extend((elem, base + k * size, depth + 1, tag) for k in range(min(n, _MAX_ELEMS)))
            continue
        if t.kind == BtfKind.STRUCT and t.name in GRAPH_ROOTS:
            node = _node_offset(btf, tag)
            if node is not None:
                out.append((base, *node))
            continue
        if t.kind not in (BtfKind.STRUCT, BtfKind.UNION) or depth >= _MAX_NEST:
            continue
        for k, (_name, mtype, bits) in enumerate(t.members):
            if btf.resolve(mtype).kind in (BtfKind.STRUCT, BtfKind.UNION, BtfKind.ARRAY):
                work.append((mtype, base + bits // 8, depth + 1, tags.get((t.id, k), "")))
    return tuple(sorted(out))


__all__ = ["GRAPH_ROOTS", "graph_roots", "kptr_fields", "KPTR_TAGS"]
