"""Per-instruction source lines from an object's DWARF line table (``.debug_line``).

BTF line info (``.BTF.ext``) has a record only where the line changes, and
LLVM skips instructions without a debug location, so such an instruction
takes the line of whatever record precedes it in the section -- at the top
of a block reached only by a jump, that is the physically previous block's
line, code the instruction has nothing to do with.  DWARF's line table marks
those instructions with line 0 ("no source line", emitted at block tops),
so it is exact where BTF is coarse::

    >>> rows = dwarf_lines(obj.data)["xdp"]      # [(slot, file, line)], line 0: no line
    >>> per_slot = slot_lines(rows, nslots)      # [(file, line) | None] per slot

Addresses in a relocatable object are section offsets; which section a
sequence belongs to is the symbol of the relocation on its
``DW_LNE_set_address`` operand (``.rel.debug_line``, R_BPF_64_ABS64).
Objects without DWARF (stripped, or BTF-only) give ``{}``; callers fall back
to BTF line info.

`inline_copies` reads ``DW_TAG_inlined_subroutine`` ranges from
``.debug_info``: which copy of an inlined function each instruction belongs
to, so a coverage tool can add up the copies of a line (as gcov and llvm-cov
count an inlined function: once per execution, whichever copy ran).
"""

from __future__ import annotations

import io

from elftools.dwarf.constants import DW_LNE_set_address
from elftools.elf.elffile import ELFFile

from bpfpatch.isa import SLOT_SIZE

R_BPF_64_ABS64 = 2


def _name(lp, index: int) -> str:
    files = lp["file_entry"]
    if lp.header.version < 5:
        index -= 1  # DWARF 2-4 count files from 1
    if not 0 <= index < len(files):
        return ""
    fe = files[index]
    name = fe.name.decode(errors="replace")
    dirs = lp["include_directory"]
    d = fe.dir_index if lp.header.version >= 5 else fe.dir_index - 1
    if name.startswith("/") or not 0 <= d < len(dirs):
        return name
    return dirs[d].decode(errors="replace") + "/" + name


def dwarf_lines(data: bytes) -> dict[str, list[tuple[int, str, int]]]:
    """Section -> its line table rows as (slot, file, line), in address order; ``{}`` without usable DWARF.

    A row holds from its slot to the next row's (line 0: code of no source
    line).  Damaged or unrelocatable DWARF gives ``{}`` too: it is an
    improvement over BTF, never a reason to refuse an object.
    """
    try:
        return _dwarf_lines(data)
    except Exception:  # pyelftools on DWARF it does not understand: fall back to BTF
        return {}


def _dwarf_lines(data: bytes) -> dict[str, list[tuple[int, str, int]]]:
    elf = ELFFile(io.BytesIO(data))
    if elf.get_section_by_name(".debug_line") is None:
        return {}
    symtab = elf.get_section_by_name(".symtab")
    # (offset in .debug_line, section, symbol value), in offset order
    targets = sorted((off, *where) for off, where in _relocated(elf, symtab, ".rel.debug_line").items())
    code = [s.name for s in elf.iter_sections() if s["sh_type"] == "SHT_PROGBITS" and s["sh_flags"] & 0x4]
    dwarf = elf.get_dwarf_info(relocate_dwarf_sections=False)
    out: dict[str, list[tuple[int, str, int]]] = {}
    for cu in dwarf.iter_CUs():
        lp = dwarf.line_program_for_CU(cu)
        if lp is None:
            continue
        mine = [t for t in targets if lp.program_start_offset <= t[0] < lp.program_end_offset]
        k = 0
        section, base = (code[0], 0) if len(code) == 1 else (None, 0)
        rows: list[tuple[int, str, int]] = []
        for e in lp.get_entries():
            if e.is_extended and e.command == DW_LNE_set_address:
                if k < len(mine):
                    section, base = mine[k][1], mine[k][2]
                elif len(code) != 1:
                    return {}  # a sequence whose section we cannot tell
                k += 1
            st = e.state
            if st is None or section is None:
                continue
            slot = (st.address + base) // SLOT_SIZE
            rows = out.setdefault(section, [])
            if st.end_sequence:
                rows.append((slot, "", 0))
                continue
            rows.append((slot, _name(lp, st.file), st.line))
    for section, rows in out.items():
        rows.sort(key=lambda r: r[0])  # stable: the last row at an address wins in slot_lines
    return out


def _relocated(elf, symtab, rel_name: str) -> dict[int, tuple[str, int]]:
    """Offset -> (section, symbol value) of each 64-bit absolute relocation in section `rel_name`."""
    out: dict[int, tuple[str, int]] = {}
    rel = elf.get_section_by_name(rel_name)
    if rel is None or symtab is None:
        return out
    for r in rel.iter_relocations():
        if r["r_info_type"] != R_BPF_64_ABS64:
            continue
        sym = symtab.get_symbol(r["r_info_sym"])
        if isinstance(sym["st_shndx"], int):
            out[r["r_offset"]] = (elf.get_section(sym["st_shndx"]).name, sym["st_value"])
    return out


def inline_copies(data: bytes) -> dict[str, list[tuple[int, int, int, int]]]:
    """Section -> inlined-function copies as (first slot, end slot, depth, copy id); ``{}`` without DWARF.

    A copy may have several ranges (one tuple each, same id); copies nest
    (an inline function inlined into another: greater depth).  The id is the
    ``DW_TAG_inlined_subroutine``'s offset in ``.debug_info``.
    """
    try:
        return _inline_copies(data)
    except Exception:  # DWARF pyelftools cannot read: no copies known, lines are counted as one
        return {}


def _inline_copies(data: bytes) -> dict[str, list[tuple[int, int, int, int]]]:
    elf = ELFFile(io.BytesIO(data))
    if elf.get_section_by_name(".debug_info") is None:
        return {}
    code = [s.name for s in elf.iter_sections() if s["sh_type"] == "SHT_PROGBITS" and s["sh_flags"] & 0x4]
    addr_at = _relocated(elf, elf.get_section_by_name(".symtab"), ".rel.debug_addr")
    dwarf = elf.get_dwarf_info(relocate_dwarf_sections=False)
    rnglists = dwarf.range_lists()
    out: dict[str, list[tuple[int, int, int, int]]] = {}
    for cu in dwarf.iter_CUs():
        top = cu.get_top_DIE()
        addr_base = top.attributes["DW_AT_addr_base"].value if "DW_AT_addr_base" in top.attributes else 8
        cu_base = top.attributes["DW_AT_low_pc"].value if "DW_AT_low_pc" in top.attributes else 0
        where: dict[int, tuple[str, int] | None] = {}  # subprogram DIE offset -> (section, symbol value)

        def section_of(die):
            p = die
            while p is not None and p.tag != "DW_TAG_subprogram":
                p = p.get_parent()
            if p is None:
                return None
            if p.offset not in where:
                lo = p.attributes.get("DW_AT_low_pc")
                got = None
                if lo is not None and lo.form.startswith("DW_FORM_addrx"):
                    got = addr_at.get(addr_base + 8 * lo.raw_value)
                if got is None and len(code) == 1:
                    got = (code[0], 0)
                where[p.offset] = got
            return where[p.offset]

        for die in cu.iter_DIEs():
            if die.tag != "DW_TAG_inlined_subroutine":
                continue
            sec = section_of(die)
            if sec is None:
                continue
            spans: list[tuple[int, int]] = []
            a = die.attributes
            if "DW_AT_low_pc" in a and "DW_AT_high_pc" in a:
                lo = a["DW_AT_low_pc"].value
                hi = a["DW_AT_high_pc"]
                spans.append((lo, lo + hi.value if hi.form.startswith("DW_FORM_data") else hi.value))
            elif "DW_AT_ranges" in a and rnglists is not None:
                base = cu_base
                for e in rnglists.get_range_list_at_offset(a["DW_AT_ranges"].value, cu=cu):
                    kind = getattr(e, "entry_type", None)
                    if kind == "DW_RLE_offset_pair":
                        spans.append((base + e.start_offset, base + e.end_offset))
                    elif kind == "DW_RLE_base_address":
                        base = e.address
                    elif kind == "DW_RLE_base_addressx":
                        base = dwarf.get_addr(cu, e.index)
                    elif kind == "DW_RLE_start_length":
                        spans.append((e.start_address, e.start_address + e.length))
                    elif kind == "DW_RLE_start_end":
                        spans.append((e.start_address, e.end_address))
                    elif kind == "DW_RLE_startx_length":
                        lo = dwarf.get_addr(cu, e.start_index)
                        spans.append((lo, lo + e.length))
                    elif kind == "DW_RLE_startx_endx":
                        spans.append((dwarf.get_addr(cu, e.start_index), dwarf.get_addr(cu, e.end_index)))
                    elif kind is None and hasattr(e, "begin_offset"):  # DWARF 4 .debug_ranges
                        spans.append((base + e.begin_offset, base + e.end_offset))
            depth, p = 0, die.get_parent()
            while p is not None:
                depth += p.tag == "DW_TAG_inlined_subroutine"
                p = p.get_parent()
            for lo, hi in spans:
                out.setdefault(sec[0], []).append(((lo + sec[1]) // SLOT_SIZE, (hi + sec[1] + SLOT_SIZE - 1) // SLOT_SIZE,
                                                   depth, die.offset))
    return out


def slot_copies(copies: list[tuple[int, int, int, int]], nslots: int) -> list[int]:
    """Per slot: the innermost inlined copy that holds it, or -1 (the function's own code)."""
    out = [-1] * nslots
    depth = [-1] * nslots
    for lo, hi, d, ident in copies:
        for s in range(max(0, lo), min(hi, nslots)):
            if d > depth[s]:
                out[s], depth[s] = ident, d
    return out


def slot_lines(rows: list[tuple[int, str, int]], nslots: int) -> list[tuple[str, int] | None]:
    """Per slot of a section of `nslots` slots: its (file, line), None for code of no source line."""
    out: list[tuple[str, int] | None] = [None] * nslots
    for k, (slot, name, line) in enumerate(rows):
        end = rows[k + 1][0] if k + 1 < len(rows) else nslots
        where = (name, line) if line else None
        for s in range(max(0, slot), min(end, nslots)):
            out[s] = where
    return out


__all__ = ["dwarf_lines", "inline_copies", "slot_copies", "slot_lines"]
