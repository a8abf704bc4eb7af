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
from bpfpatch.isa import LD_IMM64, SLOT_DTYPE, branch_offsets, dst_of, insn_starts, opcodes, src_of
from bpfpatch.isa.refs import MAY_TARGET, TARGET_OF, TARGET_TABLE, Ref, Target, ref_of
from bpfpatch.patch.buffer import ToItem, ToNext, ToSiteTarget
from bpfpatch.program import Program, compose_maps, remap_meta

FieldValue = Union[int, Callable[[np.ndarray], np.ndarray]]


class _Site:
    """Marker row: the site's original instruction."""

    def __repr__(self) -> str:
        return "SITE"


SITE = _Site()


class _Field:
    """``S.dst``, ``S.code``...: one field of the site's own instruction.

    Callable on the structured site array like any user function; the bulk
    engine recognizes it and reads the field straight from the 8-byte words.
    """

    __slots__ = ("name",)
    #: (shift, mask) of each field inside a little-endian slot word.
    LAYOUT = {"code": (0, 0xFF), "dst": (8, 0x0F), "src": (12, 0x0F), "off": (16, 0xFFFF), "imm": (32, 0xFFFFFFFF)}

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, sites: np.ndarray) -> np.ndarray:
        if self.name == "dst":
            return dst_of(sites)
        if self.name == "src":
            return src_of(sites)
        return sites[self.name]

    def __repr__(self) -> str:
        return f"S.{self.name}"


class _SiteFields:
    """``S.dst`` etc.: the site's own field values, for template rows."""

    def __getattr__(self, name: str) -> _Field:
        if name not in _Field.LAYOUT:
            raise AttributeError(name)
        return _Field(name)


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

    def __post_init__(self) -> None:
        # Constant fields are checked here, per-site arrays and computed values where they are
        # laid out (`_row_word`): a value that does not fit its field is refused, never masked.
        for attr, _, _ in _WORD_FIELDS:
            v = getattr(self, attr)
            if isinstance(v, np.ndarray) or callable(v):
                continue
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise PatchError(f"template row field {attr}={v!r}: not an int, a per-site array or a function")
            _check_range(attr, int(v), int(v))


def _check_range(attr: str, lo: int, hi: int) -> None:
    """Refuse a template field whose values [lo, hi] do not fit (registers up to the kernel's AX, r11)."""
    low, high = _FIELD_RANGE[attr]
    if lo < low or hi > high:
        bad = lo if lo < low else hi
        raise PatchError(f"template row field {attr}={bad}: out of range {low}..{high}")


# What a template field may hold: code u8, registers r0-r10 and AX (r11), off s16,
# imm s32 (or its unsigned 32-bit spelling, as masks are often written).
_FIELD_RANGE = {"code": (0, 0xFF), "dst": (0, 11), "src": (0, 11), "off": (-(1 << 15), (1 << 15) - 1),
                "imm": (-(1 << 31), (1 << 32) - 1)}


Template = Sequence[Union[Row, _Site]]
#: A template row's reference: another row, the node after the site, or the site's own target.
RowRef = Union[ToItem, ToNext, ToSiteTarget]

# Where each Row field lives in the slot word: (attribute, shift, mask).
_WORD_FIELDS = (("code", 0, 0xFF), ("dst", 8, 0x0F), ("src", 12, 0x0F), ("off", 16, 0xFFFF), ("imm", 32, 0xFFFFFFFF))
_U64 = np.uint64


def _row_word(row: Row, site_words: np.ndarray, out: np.ndarray | None = None) -> np.ndarray | np.uint64:
    """A template row as little-endian slot words: one scalar, or one word per site.

    Constant fields fold into one scalar; ``S.<field>`` values are moved with
    one shift and one mask on the site words; any other function gets the
    structured site rows.  With `out` (an array of one word per site) the
    words are written there, a constant row's one word into every site.
    """
    const = 0
    dynamic = None
    for attr, shift, mask in _WORD_FIELDS:
        v = getattr(row, attr)
        if isinstance(v, np.ndarray):  # one value per site
            if v.dtype.kind not in "iub":
                raise PatchError(f"template row field {attr}: a per-site array of {v.dtype}, not integers")
            if len(v):
                _check_range(attr, int(v.min()), int(v.max()))
            part = (v.view(v.dtype.str.replace("i", "u")) if v.dtype.kind == "i" else v).astype(_U64) & _U64(mask)
        elif not callable(v):
            const |= (int(v) & mask) << shift
            continue
        elif isinstance(v, _Field):
            # The site's field moved straight into this field's place: one shift, one mask.
            from_shift, from_mask = _Field.LAYOUT[v.name]
            move = from_shift - shift
            part = site_words >> _U64(move) if move > 0 else site_words << _U64(-move) if move else site_words.copy()
            part &= _U64((from_mask & mask) << shift)
            shift = 0  # already in its place
        else:
            part = np.asarray(v(np.ascontiguousarray(site_words).view(SLOT_DTYPE)))  # a view, no copy
            if part.dtype.kind == "i":  # two's complement bits of negative offsets/immediates
                part = part.view(part.dtype.str.replace("i", "u"))
            part = part.astype(_U64) & _U64(mask)
        if shift:
            part <<= _U64(shift)
        if dynamic is None:
            dynamic = part
        elif dynamic.shape == part.shape:
            np.bitwise_or(dynamic, part, out=dynamic)  # both owned: no new array per field
        else:  # a function gave one value for every site
            dynamic = dynamic | part
    if dynamic is None:
        if out is not None:
            out[...] = _U64(const)
        return _U64(const)
    if out is not None:
        return np.bitwise_or(dynamic, _U64(const), out=out)
    if const:
        dynamic |= _U64(const)
    return dynamic


def row_words(template: Template, site_words: np.ndarray, *, site_refs: bool) -> tuple[list, tuple[RowRef, ...]]:
    """Every row of `template` as slot words for the sites, and the rows' references.

    References: `ToItem` (the row it jumps to), `ToNext` for a jump one past
    the last row, `ToSiteTarget` for a row that goes where the site's own
    jump went (`to_site_target`, and `SITE` when ``site_refs``).
    """
    words: list = []
    plan: list[RowRef] = []
    n_rows = len(template)
    for r, row in enumerate(template):
        if isinstance(row, _Site):
            words.append(site_words)
            if site_refs:
                plan.append(ToSiteTarget(r))
            continue
        if callable(row.code):
            w = _row_word(row, site_words)
            if np.take(MAY_TARGET, (np.asarray(w) & _U64(0xFF)).astype(np.uint8)).any():
                raise PatchError(f"template row {r}: a computed opcode cannot be a jump or call")
            words.append(w)
            continue
        if row.code == LD_IMM64 or (not callable(row.src) and ref_of(row.code, int(row.src) & 0xF) == Ref.SUBPROG):
            raise PatchError(f"template row {r}: ld_imm64 and calls cannot be template rows")
        field = TARGET_OF[row.code << 4 | (int(row.src) & 0xF if not callable(row.src) else 0)]
        words.append(_row_word(row, site_words))
        if row.to_site_target:
            plan.append(ToSiteTarget(r))
        elif field != Target.NONE:
            rel = row.imm if field == Target.IMM else row.off
            if callable(rel):
                raise PatchError(f"template row {r}: a jump's offset must be a number")
            dest = r + int(rel) + 1
            if dest == n_rows:
                plan.append(ToNext(r, False))
            elif 0 <= dest < n_rows:
                plan.append(ToItem(r, dest, False))
            else:
                raise PatchError(f"template row {r}: jump to row {dest} leaves the template (0..{n_rows})")
    return words, tuple(plan)


def _set_rel(out: np.ndarray, at: np.ndarray, rel: np.ndarray) -> None:
    """Write relocated offsets into the field each instruction keeps them in."""
    if not len(at):
        return
    in_imm = TARGET_TABLE[out["code"][at], out["regs"][at] >> 4] == Target.IMM
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


_CHUNK = 1 << 16
#: Lay out a chunk of consecutive sites (each right after the other, in order) as one block of
#: rows, written column by column, instead of one scattered write per row (tests switch it off).
CONSECUTIVE_BLOCKS = True


def _consecutive(sites: np.ndarray) -> bool:
    """Are the sites one run of consecutive slots, in ascending order?  (Checked a chunk at a time.)"""
    k = len(sites)
    if k < 2 or int(sites[-1]) - int(sites[0]) != k - 1:
        return False
    for lo in range(0, k - 1, _CHUNK):
        part = sites[lo : lo + _CHUNK + 1]
        if not (part[1:] - part[:-1] == 1).all():
            return False
    return True


def _write_rows(out, out64, words, first, target_of, sites, template, run: bool) -> None:
    """Lay out one chunk of sites of one group: every template row at every site (`run`: the chunk is
    one run of consecutive slots, `_consecutive`)."""
    targets = target_of[sites] if target_of is not None else None
    if run:
        # Site i's rows are at b0 + T*i ... b0 + T*i + T-1: row r of every site is one strided column.
        s0, b0, t = int(sites[0]), int(first[sites[0]]), len(template)
        site_words = words[s0 : s0 + len(sites)]
        block = out64[b0 : b0 + t * len(sites)].reshape(len(sites), t)
        base = None
    else:
        site_words = words[sites]
        block = None
        base = first[sites]
    for r, row in enumerate(template):
        if block is not None:
            column = block[:, r]
            if isinstance(row, _Site) and targets is None:
                column[...] = site_words
                continue
            if not isinstance(row, _Site) and not row.to_site_target:
                _row_word(row, site_words, column)
                continue
            # A row with a reference: its positions, as the scattered layout has them.
            at = np.arange(b0 + r, b0 + t * len(sites), t, dtype=np.int64)
        else:
            at = base + r if r else base
        if isinstance(row, _Site):
            out64[at] = site_words
            if targets is not None:
                has = targets >= 0
                if has.any():
                    _set_rel(out, at[has], first[targets[has]] - at[has] - 1)
            continue
        out64[at] = _row_word(row, site_words)
        if row.to_site_target:
            if targets is None or (targets < 0).any():
                raise PatchError("to_site_target row for a site that is not a jump")
            _set_rel(out, at, first[targets] - at - 1)


def replace_sites(program: Program, groups: Sequence[tuple[np.ndarray, Template]]) -> Program:
    """Replace every site of every group by its template; return the new program.

    `groups` is a list of (site slot indices, template).  Sites must be
    distinct single-slot instructions.
    """
    slots = np.ascontiguousarray(program.slots)
    words = slots.view(np.uint64)  # whole instructions move as 8-byte words
    n = len(slots)
    code = opcodes(slots)
    has_ld = bool((code == LD_IMM64).any())
    starts = insn_starts(slots) if has_ld else None
    # length[j]: how many slots old slot j becomes.
    length = np.ones(n, dtype=np.int32)
    is_site = np.zeros(n, dtype=bool)
    prepared = []
    n_sites = 0
    for g, (sites, template) in enumerate(groups):
        sites = np.asarray(sites, dtype=np.int64)
        if not len(template):
            raise PatchError(f"group {g}: empty template (to remove instructions use a PatchList)")
        for row in template:
            if isinstance(row, Row) and not callable(row.code) and row.code == LD_IMM64:
                raise PatchError(f"group {g}: templates cannot contain ld_imm64")
        run = CONSECUTIVE_BLOCKS and _consecutive(sites)
        if len(sites):
            # one run of slots: its bounds are its ends, and it is marked with a slice
            lo, hi = (int(sites[0]), int(sites[-1])) if run else (int(sites.min()), int(sites.max()))
            if lo < 0 or hi >= n:
                raise PatchError(f"group {g}: site outside the program")
            where = slice(lo, hi + 1) if run else sites
            if has_ld and (~starts[where] | (code[where] == LD_IMM64)).any():
                raise PatchError(f"group {g}: sites must be single-slot instructions")
            is_site[where] = True
            length[where] = len(template)
            n_sites += len(sites)
            prepared.append((sites, template, run))
        # A site listed twice (in one group or two) sets the same flag twice.
        if int(np.count_nonzero(is_site)) != n_sites:
            raise PatchError(f"group {g}: a site is patched twice")

    # first[j]: new position of old slot j (of the first row for a site); first[n]: the end.
    first = np.empty(n + 1, dtype=np.int64)
    first[0] = 0
    np.cumsum(length, out=first[1:], dtype=np.int64)
    total = int(first[n])

    out = np.empty(total, dtype=SLOT_DTYPE)
    out64 = out.view(np.uint64)
    plain_idx = np.flatnonzero(~is_site)
    out64[first[plain_idx]] = words[plain_idx]

    idx, rel = branch_offsets(slots, program.external)
    target_of = np.full(n, -1, dtype=np.int64) if len(idx) else None
    if target_of is not None:
        target_of[idx] = idx + rel + 1
        # Relocate the untouched jumps.
        pj = idx[~is_site[idx]]
        _set_rel(out, first[pj], first[target_of[pj]] - first[pj] - 1)

    for sites, template, run in prepared:
        # Chunks keep every temporary small enough to stay in cache and be reused
        # by the allocator: on large programs this halves the time.
        for lo in range(0, len(sites), _CHUNK):
            chunk = sites[lo : lo + _CHUNK]
            _write_rows(out, out64, words, first, target_of, chunk, template, run or CONSECUTIVE_BLOCKS and _consecutive(chunk))
    insn_map = first[1:] - 1  # an instruction is the last slot of what replaced it
    idx_map = first[:n]
    result = Program(out, name=program.name, meta=program.meta)
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
        aux_out[insn_map] = aux_in  # kernel: a site's aux moves to its patch's last insn
        result.aux = aux_out.tolist()
    result.external = frozenset(int(first[s]) for s in program.external)
    result.meta = remap_meta(program.meta, insn_map, idx_map, total)
    compose_maps(program, result)
    return result
