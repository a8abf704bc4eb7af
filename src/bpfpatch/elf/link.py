"""Link one program section into a loadable program, as libbpf does.

The section's instructions come first; every `.text` function it calls
(transitively) is appended, calls are resolved to the appended copies,
func_info / line_info / CO-RE records are concatenated and re-based, and map references
(BTF-defined maps and global data) are recorded in
``meta["map_refs"]`` / ``meta["map_specs"]`` for the kernel layer.
"""

from __future__ import annotations

import numpy as np

from bpfpatch.btf import CoreRelos
from bpfpatch.elf.model import GLOBAL_DATA_PREFIXES, R_BPF_64_32, R_BPF_64_64, ElfModel, MapRefs, MapSpec, Symbol
from bpfpatch.errors import ElfError
from bpfpatch.isa import SLOT_DTYPE
from bpfpatch.program import CORE_RELOS, FuncInfo, LineInfo, Program


def _function_at(symbols: list[Symbol], slot: int, section: str) -> Symbol:
    for s in symbols:
        if s.slot <= slot < s.slot + max(s.size_slots, 1):
            return s
    raise ElfError(f"call target slot {slot} is not inside a function", section=section)


def _entry(obj: ElfModel, name: str) -> tuple[str, tuple[str, int, int]]:
    """The program to link: a section, ``section:function``, or a function name.

    A section holding several global functions holds several programs (libbpf's
    rule); the first is the default.
    """
    sec, _, func = name.partition(":")
    if sec not in obj.programs:
        for s, prog in obj.programs.items():
            if any(sym.name == name for sym in prog.meta["symbols"]):
                sec, func = s, name
                break
        else:
            raise ElfError(f"no program section {name!r} (have: {', '.join(obj.programs)})")
    prog = obj.programs[sec]
    funcs = sorted((sym for sym in prog.meta["symbols"] if sym.binding == "STB_GLOBAL"), key=lambda sym: sym.slot)
    if func:
        match = [sym for sym in prog.meta["symbols"] if sym.name == func]
        if not match:
            raise ElfError(f"no function {func!r} in section {sec!r}", section=sec)
        fn = match[0]
    elif len(funcs) > 1:
        fn = funcs[0]
    else:
        return sec, (sec, 0, len(prog.slots))
    return sec, (sec, fn.slot, fn.slot + max(fn.size_slots, 1))


def link_program(obj: ElfModel, section: str) -> Program:
    """One section linked with its .text callees and map references; `ElfError` if it cannot be."""
    try:
        return _link_program(obj, section)
    except ElfError:
        raise
    except (IndexError, ValueError, KeyError, OverflowError) as exc:
        raise ElfError(f"cannot link a malformed object: {exc}", section=section) from exc


def _link_program(obj: ElfModel, section: str) -> Program:
    sec_name, main = _entry(obj, section)
    pieces: list[tuple[str, int, int]] = [main]  # (section, start slot, end slot), in layout order
    placed: dict[tuple[str, int], int] = {(sec_name, main[1]): 0}  # (section, start slot) -> new slot
    total = main[2] - main[1]
    calls: list[tuple[int, str, int]] = []  # (new slot of call, target section, target slot)
    work = [main]

    def inside(tsec: str, tslot: int) -> bool:
        return any(s == tsec and a <= tslot < b for s, a, b in pieces)

    while work:
        sec, start, end = work.pop()
        prog = obj.programs[sec]
        base = placed[(sec, start)]
        rel_at = {r.slot: r for r in prog.meta["relocations"]}
        for slot in range(start, end):
            if prog.slots["code"][slot] != 0x85 or (prog.slots["regs"][slot] >> 4) != 1:
                continue
            imm = int(prog.slots["imm"][slot])
            r = rel_at.get(slot)
            if r is not None and r.type == R_BPF_64_32:
                tsec, tslot = r.symbol_section, r.symbol_value // 8 + imm + 1
            else:
                tsec, tslot = sec, slot + imm + 1
            calls.append((base + slot - start, tsec, tslot))
            if inside(tsec, tslot):
                continue
            if tsec not in obj.programs:
                raise ElfError(f"call into section {tsec!r} that bpfpatch cannot link", section=sec)
            # A subprogram (in .text or the same section): append its function, like libbpf.
            fn = _function_at(obj.programs[tsec].meta["symbols"], tslot, tsec)
            piece = (tsec, fn.slot, fn.slot + max(fn.size_slots, 1))
            placed[(tsec, fn.slot)] = total
            pieces.append(piece)
            total += piece[2] - piece[1]
            work.append(piece)
    slots = np.concatenate([obj.programs[s].slots[a:b] for s, a, b in pieces]) if pieces else np.empty(0, SLOT_DTYPE)

    def new_slot(sec: str, slot: int) -> int:
        for s, a, b in pieces:
            if s == sec and a <= slot < b:
                return placed[(s, a)] + slot - a
        raise ElfError(f"slot {slot} of {sec} was not linked", section=sec)

    for at, tsec, tslot in calls:
        slots["imm"][at] = new_slot(tsec, tslot) - at - 1
    func_info: list[FuncInfo] = []
    line_info: list[LineInfo] = []
    core_relos = CoreRelos()
    map_refs = MapRefs()
    map_specs: dict[str, MapSpec] = {}
    for s, a, b in pieces:
        prog = obj.programs[s]
        base = placed[(s, a)]
        for f in prog.func_info or []:
            if a <= f.insn_off < b:
                func_info.append(f._replace(insn_off=base + f.insn_off - a))
        for li in prog.line_info or []:
            if a <= li.insn_off < b:
                line_info.append(li._replace(insn_off=base + li.insn_off - a))
        for c in prog.core_relos:
            if a <= c.insn_off < b:
                core_relos.append(c._replace(insn_off=base + c.insn_off - a))
        for r in prog.meta["relocations"]:
            if r.type != R_BPF_64_64 or not a <= r.slot < b:
                continue
            at = base + r.slot - a
            if r.symbol_section.startswith(GLOBAL_DATA_PREFIXES) and r.symbol_section in obj.data_sections:
                value_off = r.symbol_value + int(slots["imm"][at])
                map_refs[at] = (r.symbol_section, value_off)
                if r.symbol_section not in map_specs:
                    data = obj.data_sections[r.symbol_section]
                    map_specs[r.symbol_section] = MapSpec(r.symbol_section[:15], 2, 4, max(len(data), 1), 1, 0, data)
            elif r.symbol in obj.maps:
                d = obj.maps[r.symbol]
                map_refs[at] = (r.symbol, None)
                i = d.get("inner")
                inner = MapSpec("", i["map_type"], i["key_size"], i["value_size"], i["max_entries"], i["flags"]) if i else None
                map_specs[r.symbol] = MapSpec(r.symbol, d["map_type"], d["key_size"], d["value_size"], d["max_entries"],
                                              d["flags"], inner=inner)
            else:
                raise ElfError(f"ld_imm64 at slot {r.slot} refers to {r.symbol!r}, which is neither a map nor global data", section=s)
    subprogs = sorted({placed[k] for k in placed} | {f.insn_off for f in func_info})
    return Program(
        slots,
        func_info=func_info or None,
        line_info=line_info or None,
        subprogs=subprogs,
        name=sec_name,
        meta={"section": sec_name, "map_refs": map_refs, "map_specs": map_specs, "license": obj.license,
              **({CORE_RELOS: core_relos} if core_relos else {})},
    )
