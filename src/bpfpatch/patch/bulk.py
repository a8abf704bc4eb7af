"""The bulk form: patch many sites with one template, vectorized.

For passes that rewrite every site of one shape the same way (a
divide-by-zero guard before each division, a counter before each exit, ...)
`replace_sites` takes arrays of sites and a `Template` per group and lays out
the result with NumPy: no Python object per instruction, the same semantics as
`PatchList.replace` (jumps to a site land on the first row of its
replacement, its aux data, line info and subprogram start ride along).

A template is a list of rows; each row is `SITE` (the original instruction,
its jump target kept) or a `Row` whose fields are ints or functions of the
site array (``S.dst``, ``S.src``, ``S.code``... or any ``lambda sites: ...``
returning an array).  Jumps inside a template use offsets relative to the row
(kernel convention); ``Row(..., to_site_target=True)`` makes a row jump to
where the site's own jump went.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence, Union

import numpy as np

from bpfpatch.errors import PatchError, RelocationError
from bpfpatch.isa import KIND, LD_IMM64, SLOT_DTYPE, Kind, branch_offsets, dst_of, insn_starts, pack_regs, src_of
from bpfpatch.program import Program, compose_maps, remap_meta

FieldValue = Union[int, Callable[[np.ndarray], np.ndarray]]


class _Site:
    """Marker row: the site's original instruction."""

    def __repr__(self) -> str:
        return "SITE"


SITE = _Site()


class _SiteFields:
    """``S.dst`` etc.: the site's own field values, for template rows."""

    def __getattr__(self, name: str) -> Callable[[np.ndarray], np.ndarray]:
        if name == "dst":
            return dst_of
        if name == "src":
            return src_of
        if name not in ("code", "off", "imm"):
            raise AttributeError(name)
        return lambda sites: sites[name]


S = _SiteFields()


@dataclass(frozen=True)
class Row:
    """One template instruction; each field an int or a function of the site array."""

    code: FieldValue
    dst: FieldValue = 0
    src: FieldValue = 0
    off: FieldValue = 0
    imm: FieldValue = 0
    to_site_target: bool = False


Template = Sequence[Union[Row, _Site]]

_IMM_TARGET = {Kind.GOTOL, Kind.CALL, Kind.LD_IMM64}


def _value(v: FieldValue, sites: np.ndarray) -> np.ndarray | int:
    return v(sites) if callable(v) else v


def _word(code, regs, off, imm) -> np.ndarray | np.uint64:
    """Fields -> the slot as a little-endian 64-bit word.

    Scalars stay scalars so a constant row costs one broadcast store.
    """
    u = np.uint64

    def part(v, mask: int, shift: int):
        if np.isscalar(v) or np.ndim(v) == 0:
            return u((int(v) & mask) << shift)
        v = np.asarray(v)
        if v.dtype.kind == "i":  # two's complement bits of negative offsets/immediates
            v = v.view(v.dtype.str.replace("i", "u"))
        return (v.astype(u) & u(mask)) << u(shift) if shift else v.astype(u) & u(mask)

    return part(code, 0xFF, 0) | part(regs, 0xFF, 8) | part(off, 0xFFFF, 16) | part(imm, 0xFFFFFFFF, 32)


def _set_rel(out: np.ndarray, at: np.ndarray, rel: np.ndarray) -> None:
    """Write relocated offsets into the field each instruction keeps them in."""
    if not len(at):
        return
    kind = KIND[out["code"][at]]
    in_imm = np.isin(kind, list(_IMM_TARGET))
    off_at, off_rel = at[~in_imm], rel[~in_imm]
    bad = (off_rel < -(1 << 15)) | (off_rel >= 1 << 15)
    if bad.any():
        i = int(np.argmax(bad))
        raise RelocationError(
            "jump offset does not fit in 16 bits (use PatchList with relax_long_jumps=True)",
            index=int(off_at[i]),
            needed=int(off_rel[i]),
        )
    out["off"][off_at] = off_rel
    out["imm"][at[in_imm]] = rel[in_imm]


def replace_sites(program: Program, groups: Sequence[tuple[np.ndarray, Template]]) -> Program:
    """Replace every site of every group by its template; return the new program.

    `groups` is a list of (site slot indices, template).  Sites must be
    distinct single-slot instructions.
    """
    slots = program.slots
    n = len(slots)
    starts = insn_starts(slots)
    extra = np.zeros(n, dtype=np.int64)
    group_of = np.full(n, -1, dtype=np.int64)
    for g, (sites, template) in enumerate(groups):
        sites = np.asarray(sites, dtype=np.int64)
        if not len(template):
            raise PatchError(f"group {g}: empty template (to remove instructions use a PatchList)")
        if len(sites) and ((sites < 0) | (sites >= n)).any():
            raise PatchError(f"group {g}: site outside the program")
        if len(sites) and (~starts[sites] | (slots["code"][sites] == LD_IMM64)).any():
            raise PatchError(f"group {g}: sites must be single-slot instructions")
        if (group_of[sites] >= 0).any():
            raise PatchError(f"group {g}: a site is patched twice")
        for row in template:
            if isinstance(row, Row) and not callable(row.code) and row.code == LD_IMM64:
                raise PatchError(f"group {g}: templates cannot contain ld_imm64")
        group_of[sites] = g
        extra[sites] = len(template) - 1

    # first[j]: new position of old slot j (of the first row for a site); first[n]: the end.
    first = np.empty(n + 1, dtype=np.int64)
    first[0] = 0
    np.cumsum(extra + 1, out=first[1:])
    total = int(first[n])

    out = np.empty(total, dtype=SLOT_DTYPE)
    out64 = out.view(np.uint64)  # whole instructions move as 8-byte words
    plain = group_of < 0
    plain_idx = np.flatnonzero(plain)
    out64[first[plain_idx]] = slots.view(np.uint64)[plain_idx]

    idx, rel = branch_offsets(slots)
    if program.external and len(idx):
        keep = ~np.isin(idx, np.fromiter(program.external, dtype=np.int64))
        idx, rel = idx[keep], rel[keep]
    target_of = np.full(n, -1, dtype=np.int64)
    target_of[idx] = idx + rel + 1

    # Relocate the untouched jumps.
    pj = idx[plain[idx]]
    _set_rel(out, first[pj], first[target_of[pj]] - first[pj] - 1)

    last_row = np.full(n, -1, dtype=np.int64)
    for sites, template in groups:
        sites = np.asarray(sites, dtype=np.int64)
        if not len(sites):
            continue
        site_rows = slots[sites]
        base = first[sites]
        for r, row in enumerate(template):
            at = base + r
            if isinstance(row, _Site):
                out[at] = site_rows
                t = target_of[sites]
                has = t >= 0
                _set_rel(out, at[has], first[t[has]] - at[has] - 1)
                continue
            out64[at] = _word(
                _value(row.code, site_rows),
                pack_regs(_value(row.dst, site_rows), _value(row.src, site_rows)),
                _value(row.off, site_rows),
                _value(row.imm, site_rows),
            )
            if row.to_site_target:
                t = target_of[sites]
                if (t < 0).any():
                    raise PatchError("to_site_target row for a site that is not a jump")
                _set_rel(out, at, first[t] - at - 1)
        last_row[sites] = base + len(template) - 1

    result = Program(out, name=program.name, meta=program.meta)
    idx_map = first[:n].copy()
    insn_map = np.where(plain, idx_map, last_row)
    result.idx_map, result.insn_map = idx_map, insn_map
    result.subprogs = idx_map[np.asarray(program.subprogs, dtype=np.int64)].tolist()
    if program.func_info is not None:
        result.func_info = [f._replace(insn_off=int(idx_map[f.insn_off])) for f in program.func_info]
    if program.line_info is not None:
        result.line_info = [li._replace(insn_off=int(idx_map[li.insn_off])) for li in program.line_info]
    if program.aux is not None:
        aux_in = np.empty(n, dtype=object)
        aux_in[:] = program.aux
        aux_out = np.full(total, None, dtype=object)
        aux_out[first[plain_idx]] = aux_in[plain_idx]
        sites_all = np.flatnonzero(~plain)
        aux_out[last_row[sites_all]] = aux_in[sites_all]  # kernel: aux moves to the patch's last insn
        result.aux = aux_out.tolist()
    result.external = frozenset(int(first[s]) for s in program.external)
    result.meta = remap_meta(program.meta, insn_map, idx_map, total)
    compose_maps(program, result)
    return result
