"""CO-RE field offsets as libbpf computes them at load (``bpf_core_calc_relo``), for the analysis.

An object built against another kernel's ``vmlinux.h`` (ebpf_exporter, retsnoop, tetragon, Falco
ship their own) reads ``task->cgroups`` at that kernel's offset; libbpf rewrites the load's offset
to the running kernel's before the verifier sees it.  The analysis must see what the verifier sees,
so `relocated_offsets` gives a copy of a linked program with its ``FIELD_BYTE_OFFSET`` and
``FIELD_EXISTS`` records applied against the target's BTF; the program itself (what a rewrite
writes back, with its records, for libbpf) is left as it is.

The field is found as libbpf finds it (``bpf_core_spec_parse`` / ``bpf_core_spec_match``): the
local access string's named members are looked up by name in the target type of the same kind and
essential name (the name up to ``___``), through anonymous structs and unions, array indices by
index, and the field's types must be compatible (``bpf_core_fields_are_compat``).  A record this
cannot resolve (another kind, a bitfield, a type the target lacks) is left as clang wrote it.
"""

from __future__ import annotations

from bpfpatch.btf.ext import CoreReloKind
from bpfpatch.btf.types import Btf, BtfKind, BtfType, TypeLookup
from bpfpatch.isa.opcodes import LD_IMM64
from bpfpatch.program import Program

_COMPOSITE = (BtfKind.STRUCT, BtfKind.UNION)
_ENUMS = (BtfKind.ENUM, BtfKind.ENUM64)
# instruction classes whose `off` libbpf relocates (LDX, ST, STX) and whose `imm` (ALU, ALU64)
_LDX, _ST, _STX, _ALU, _ALU64 = 0x01, 0x02, 0x03, 0x04, 0x07


def essential_name(name: str) -> str:
    """The name without its ``___flavour`` suffix (libbpf's ``bpf_core_essential_name_len``)."""
    i = name.find("___")
    return name[:i] if i > 0 else name


def _fields_compat(local: TypeLookup, lt: int, target: TypeLookup, tt: int) -> bool:
    """``bpf_core_fields_are_compat``: composites match composites; otherwise kinds match (an enum either
    width), and enums and forward declarations match by essential name, arrays by element type."""
    for _ in range(64):
        a, b = local.resolve(lt), target.resolve(tt)
        if a.kind in _COMPOSITE and b.kind in _COMPOSITE:
            return True
        if a.kind != b.kind and not (a.kind in _ENUMS and b.kind in _ENUMS):
            return False
        if a.kind in (BtfKind.PTR, BtfKind.FLOAT, BtfKind.INT):
            return True
        if a.kind in _ENUMS or a.kind == BtfKind.FWD:
            return not a.name or not b.name or essential_name(a.name) == essential_name(b.name)
        if a.kind != BtfKind.ARRAY:
            return False
        lt, tt = a.extra[0], b.extra[0]
    return False


def _match_member(local: TypeLookup, name: str, ltype: int, target: TypeLookup, t: BtfType) -> tuple[int, int] | None:
    """(bit offset, member type) of the member `name` in the target composite `t`, anonymous members searched
    depth first as libbpf's ``bpf_core_match_member`` does; None where it is missing or incompatible."""
    stack: list[tuple[BtfType, int]] = [(t, 0)]
    while stack:
        cur, base = stack.pop()
        nested = []
        for mname, mtype, bits in cur.members:
            if mname == name:
                return (base + bits, mtype) if _fields_compat(local, ltype, target, mtype) else None
            if not mname:
                inner = target.resolve(mtype)
                if inner.kind in _COMPOSITE:
                    nested.append((inner, base + bits))
        stack.extend(reversed(nested))
    return None


class Unresolvable(Exception):
    """A record this module does not resolve (a root that is no named struct or union, a bad access string):
    its instruction is left as clang wrote it."""


def field_bits(local: TypeLookup, type_id: int, access: str, target: TypeLookup) -> tuple[int, int] | None:
    """(local bit offset, target bit offset) of the field `access` ("0:3:1") names in local type `type_id`;
    None where the target's BTF has no such field (FIELD_EXISTS is 0 there); `Unresolvable` where the record is
    of a form this does not follow."""
    try:
        path = [int(x) for x in access.split(":")]
    except ValueError:
        raise Unresolvable(access) from None
    root = local.resolve(type_id)
    if root.kind not in _COMPOSITE or not root.name:
        raise Unresolvable(access)
    targ = target.find(root.kind, essential_name(root.name))
    if targ is None:
        return None
    lbits = path[0] * local.size_of(root.id) * 8
    tbits = path[0] * target.size_of(targ.id) * 8
    lt, tt = root, targ
    for idx in path[1:]:
        if lt.kind in _COMPOSITE:
            if not 0 <= idx < len(lt.members):
                return None
            mname, mtype, bits = lt.members[idx]
            lbits += bits
            if mname:  # a named accessor: found by name in the target
                got = _match_member(local, mname, mtype, target, tt)
                if got is None:
                    return None
                tbits += got[0]
                tt = target.resolve(got[1])
            elif tt.kind not in _COMPOSITE:
                return None
            else:  # an anonymous member: its named members are searched for in the target's composite itself
                pass
            lt = local.resolve(mtype)
        elif lt.kind == BtfKind.ARRAY:
            if tt.kind != BtfKind.ARRAY or (tt.extra[2] and idx >= tt.extra[2]):
                return None
            lbits += idx * local.size_of(lt.extra[0]) * 8
            tbits += idx * target.size_of(tt.extra[0]) * 8
            lt, tt = local.resolve(lt.extra[0]), target.resolve(tt.extra[0])
        else:
            raise Unresolvable(access)
    return lbits, tbits


def field_offset(local: TypeLookup, type_id: int, access: str, target: TypeLookup) -> tuple[int, int] | None:
    """(local byte offset, target byte offset) of the field `access` names (see `field_bits`); None where the
    target lacks it or it is a bitfield (whose offset is a load plus shifts: FIELD_LSHIFT_U64 / RSHIFT_U64)."""
    got = field_bits(local, type_id, access, target)
    if got is None or got[0] % 8 or got[1] % 8:
        return None
    return got[0] // 8, got[1] // 8


def relocated_offsets(program: Program, local: Btf, target: TypeLookup) -> Program:
    """A copy of `program` with its FIELD_BYTE_OFFSET and FIELD_EXISTS records applied against `target`, as
    libbpf applies them before loading; the same program where it has none or none resolves.

    An offset is written only where the instruction holds the local offset (libbpf checks the same), into a
    load's or store's ``off`` or an ALU or ld_imm64 immediate; FIELD_EXISTS is 1 or 0 in the immediate.
    """
    relos = [r for r in program.core_relos if r.kind in (CoreReloKind.FIELD_BYTE_OFFSET, CoreReloKind.FIELD_EXISTS)]
    if not relos:
        return program
    out = program.copy()
    slots = out.slots
    for r in relos:
        if not 0 <= r.insn_off < len(slots):
            continue
        access = local.string(r.access_str_off)
        code = int(slots[r.insn_off]["code"])
        cls = code & 0x07
        try:
            if r.kind == CoreReloKind.FIELD_EXISTS:
                if code == LD_IMM64 or cls in (_ALU, _ALU64):
                    slots[r.insn_off]["imm"] = int(field_bits(local, r.type_id, access, target) is not None)
                continue
            got = field_offset(local, r.type_id, access, target)
        except Unresolvable:
            continue
        if got is None:
            continue
        old, new = got
        if cls in (_LDX, _ST, _STX):
            if int(slots[r.insn_off]["off"]) == old and -(1 << 15) <= new < (1 << 15):
                slots[r.insn_off]["off"] = new
        elif code == LD_IMM64 or cls in (_ALU, _ALU64):
            if int(slots[r.insn_off]["imm"]) == old:
                slots[r.insn_off]["imm"] = new
    return out
