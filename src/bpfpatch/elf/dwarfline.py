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
    rel = elf.get_section_by_name(".rel.debug_line")
    targets: list[tuple[int, str, int]] = []  # (offset in .debug_line, section, symbol value)
    if rel is not None and symtab is not None:
        for r in rel.iter_relocations():
            if r["r_info_type"] != R_BPF_64_ABS64:
                continue
            sym = symtab.get_symbol(r["r_info_sym"])
            shndx = sym["st_shndx"]
            if not isinstance(shndx, int):
                continue
            targets.append((r["r_offset"], elf.get_section(shndx).name, sym["st_value"]))
    targets.sort()
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


def slot_lines(rows: list[tuple[int, str, int]], nslots: int) -> list[tuple[str, int] | None]:
    """Per slot of a section of `nslots` slots: its (file, line), None for code of no source line."""
    out: list[tuple[str, int] | None] = [None] * nslots
    for k, (slot, name, line) in enumerate(rows):
        end = rows[k + 1][0] if k + 1 < len(rows) else nslots
        where = (name, line) if line else None
        for s in range(max(0, slot), min(end, nslots)):
            out[s] = where
    return out


__all__ = ["dwarf_lines", "slot_lines"]
