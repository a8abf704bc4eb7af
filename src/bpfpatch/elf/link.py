"""Link one program section into a loadable program, as libbpf does.

The section's instructions come first; every `.text` function it calls
(transitively) is appended, calls are resolved to the appended copies,
func_info / line_info / CO-RE records are concatenated and re-based, and map references
(BTF-defined maps and global data) are recorded in
``meta["map_refs"]`` / ``meta["map_specs"]`` for the kernel layer.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Any

import numpy as np

from bpfpatch.btf import BtfKind, CoreRelos
from bpfpatch.elf.model import GLOBAL_DATA_PREFIXES, R_BPF_64_32, R_BPF_64_64, ElfModel, MapRefs, MapSpec, Symbol
from bpfpatch.btf.compat import types_are_compat
from bpfpatch.btf.vmlinux import kernel_types, kernel_variable_id, kfunc_id
from bpfpatch.elf.kconfig import KCONFIG_SECTION, kconfig_data
from bpfpatch.elf.ksyms import kallsyms_address
from bpfpatch.errors import BpfPatchError, ElfError
from bpfpatch.isa import SLOT_DTYPE, pack_regs
from bpfpatch.isa.opcodes import CALL, LD_IMM64, CallSrc, PseudoSrc
from bpfpatch.program import CORE_RELOS, FuncInfo, LineInfo, Program


class _Functions:
    """The function symbols of every code section, found by slot in O(log n) (`at`)."""

    def __init__(self, obj: ElfModel) -> None:
        self.obj = obj
        self.by_section: dict[str, tuple[list[int], list[Symbol]]] = {}

    def at(self, section: str, slot: int) -> Symbol:
        """The function of `section` that holds `slot`; `ElfError` where none does."""
        found = self.by_section.get(section)
        if found is None:
            syms = sorted(self.obj.programs[section].meta["symbols"], key=lambda sym: sym.slot)
            found = self.by_section[section] = ([sym.slot for sym in syms], syms)
        starts, syms = found
        k = bisect_right(starts, slot) - 1
        if k >= 0 and slot < syms[k].slot + max(syms[k].size_slots, 1):
            return syms[k]
        raise ElfError(f"call target slot {slot} is not inside a function", section=section)


class _Slices:
    """Records of one slot range of a section (func_info, line_info, CO-RE records, relocations), by bisection
    over each list's slots computed once per (section, kind) (a program of thousands of subprograms stays
    linear)."""

    def __init__(self) -> None:
        self.slots: dict[tuple[str, str], list[int] | None] = {}

    def __call__(self, section: str, kind: str, records, a: int, b: int, field: str = "insn_off") -> list:
        if not records:
            return []
        key = (section, kind)
        if key not in self.slots:
            offs = [getattr(r, field) for r in records]
            self.slots[key] = offs if all(x <= y for x, y in zip(offs, offs[1:])) else None
        offs = self.slots[key]
        if offs is None:  # not in slot order: filter
            return [r for r in records if a <= getattr(r, field) < b]
        return records[bisect_left(offs, a):bisect_left(offs, b)]


def _kernel_function_id(obj: ElfModel, name: str) -> int | None:
    """The running kernel's BTF id of extern function `name`, as libbpf resolves it (a ``___flavour`` suffix
    is not part of the name); None for a ``__weak`` one the kernel lacks; the lookup's error for a strong one."""
    try:
        return kfunc_id(name.split("___")[0])
    except BpfPatchError:
        if name in obj.weak_externs:
            return None
        raise


def _set_src(slots: np.ndarray, at: int, src: int) -> None:
    """Give the instruction at slot `at` the source field `src` (isa's `pack_regs`), its dst kept."""
    slots["regs"][at] = pack_regs(int(slots["regs"][at]), int(src))


def _ksym_address(obj: ElfModel, slots: np.ndarray, at: int, name: str, section: str) -> None:
    """An extern the kernel holds (``__ksym``), loaded by address, as libbpf resolves it:
    - a kernel function (``bpf_ksym_exists(f)``): a BTF-id load of it in the running kernel's BTF;
    - a typed kernel variable (``extern const int bpf_prog_active __ksym``): a BTF-id load of its ``VAR``;
    - a typeless one (``extern const void _stext __ksym``): its address from ``/proc/kallsyms``;
    and 0 for a ``__weak`` one the kernel lacks."""
    btf = obj.btf
    if btf is not None and btf.find(BtfKind.FUNC, name) is not None:
        try:
            btf_id = _kernel_function_id(obj, name)
        except BpfPatchError as exc:
            raise ElfError(f"ld_imm64 at slot {at} refers to extern {name!r}, which is neither a map, global data "
                           f"nor a kernel function of the running kernel ({exc})", section=section) from exc
        _set_btf_id(slots, at, btf_id)
        return
    var = btf.find(BtfKind.VAR, name) if btf is not None else None
    if var is None:
        raise ElfError(f"ld_imm64 at slot {at} refers to extern {name!r}, which is neither a map, global data, "
                       "a kernel function nor a kernel variable (no BTF describes it)", section=section)
    typeless = btf.resolve(var.size_or_type).id == 0  # const void: an address, else a BTF-typed variable
    kind, lookup, source = ("ksym", kallsyms_address, "/proc/kallsyms does not list") if typeless else \
        ("var ksym", kernel_variable_id, "BTF does not have")
    try:
        value = lookup(name)
    except BpfPatchError as exc:
        raise ElfError(f"ld_imm64 at slot {at} refers to extern ({kind}) {name!r}: {exc}", section=section) from exc
    if value is None and name not in obj.weak_externs:
        raise ElfError(f"ld_imm64 at slot {at} refers to extern ({kind}) {name!r} (strong), which the running "
                       f"kernel's {source}", section=section)
    if typeless:
        slots["imm"][at], slots["imm"][at + 1] = _s32((value or 0) & 0xFFFFFFFF), _s32((value or 0) >> 32)
        return
    if value is not None:
        _check_ksym_type(btf, var, value, at, name, section)
    _set_btf_id(slots, at, value)


def _check_ksym_type(btf: Any, var: Any, kernel_var: int, at: int, name: str, section: str) -> None:
    """Refuse a typed ksym whose declared type is not the kernel variable's, as libbpf does
    (``bpf_object__resolve_ksym_var_btf_id``: "incompatible types")."""
    kernel = kernel_types()
    if kernel is None:  # kernel_variable_id found it, so the BTF is there; a race with its removal only
        return
    local = btf.resolve(var.size_or_type)
    theirs = kernel.resolve(kernel.type(kernel_var).size_or_type)
    if not types_are_compat(btf, local.id, kernel, theirs.id):
        raise ElfError(f"ld_imm64 at slot {at} refers to extern (var ksym) {name!r} of incompatible type: the object "
                       f"declares [{local.id}] {local.kind.name} {local.name!r}, the running kernel has "
                       f"[{theirs.id}] {theirs.kind.name} {theirs.name!r}", section=section)


def _s32(word: int) -> int:
    """A 32-bit word as the signed ``imm`` field holds it."""
    return word - (1 << 32) if word >= 1 << 31 else word


def _set_btf_id(slots: np.ndarray, at: int, btf_id: int | None) -> None:
    """Make the ld_imm64 at `at` a BTF-id load of `btf_id` in vmlinux (libbpf: an unresolved weak one reads 0)."""
    if btf_id is None:
        slots["imm"][at] = slots["imm"][at + 1] = 0
        return
    _set_src(slots, at, PseudoSrc.BTF_ID)
    slots["imm"][at], slots["imm"][at + 1] = btf_id, 0


#: The section name an undefined (extern) symbol's relocation carries.
UNDEFINED = "SHN_UNDEF"


def _code_target(obj: ElfModel, sec: str, prog: Program, slot: int, r) -> tuple[str, int] | None:
    """(section, slot) that the instruction at `slot` makes a subprogram: a pseudo call, or an ld_imm64 of a
    function's address (a callback; clang relocates it against the code section, the addend in bytes in imm,
    which libbpf turns into a pseudo-func load); None for any other instruction."""
    code, src = int(prog.slots["code"][slot]), int(prog.slots["regs"][slot]) >> 4
    imm = int(prog.slots["imm"][slot])
    if code == CALL and src == CallSrc.PSEUDO_CALL:
        if r is not None and r.type == R_BPF_64_32:
            return r.symbol_section, r.symbol_value // 8 + imm + 1
        return sec, slot + imm + 1
    if code == LD_IMM64:
        if r is not None and r.type == R_BPF_64_64 and r.symbol_section in obj.programs:
            return r.symbol_section, (r.symbol_value + imm) // 8
        if r is None and src == PseudoSrc.FUNC:
            return sec, slot + imm + 1
    return None


def _entry(obj: ElfModel, name: str) -> tuple[str, tuple[str, int, int]]:
    """The program to link: a section, ``section:function``, or a function name.

    A section holding several global functions holds several programs (libbpf's
    rule); the first is the default.
    """
    sec, _, func = name.partition(":")
    if name in obj.programs:  # a section whose name holds a colon itself (uprobe/libc.so.6:fopen)
        sec, func = name, ""
    elif sec not in obj.programs and name.rpartition(":")[0] in obj.programs:
        sec, _, func = name.rpartition(":")  # section:function, the section's own name with a colon
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
    kfuncs: list[tuple[int, str, str]] = []  # (new slot of call, extern function, section)
    funcs = _Functions(obj)
    rels: dict[str, dict[int, Any]] = {}
    # Depth first, as libbpf appends (bpf_object__reloc_code): a callee found for the first time is appended
    # and scanned at once, the caller's scan resumed after it.  (piece, slot to scan from)
    stack: list[tuple[tuple[str, int, int], int]] = [(main, main[1])]
    while stack:
        (sec, start, end), slot = stack.pop()
        prog = obj.programs[sec]
        base = placed[(sec, start)]
        rel_at = rels.get(sec)
        if rel_at is None:
            rel_at = rels[sec] = {r.slot: r for r in prog.meta["relocations"]}
        while slot < end:
            r = rel_at.get(slot)
            at = base + slot - start
            slot += 1
            if r is not None and r.symbol_section == UNDEFINED and prog.slots["code"][slot - 1] == CALL:
                kfuncs.append((at, r.symbol, sec))  # an extern kernel function
                continue
            target = _code_target(obj, sec, prog, slot - 1, r)
            if target is None:
                continue
            tsec, tslot = target
            calls.append((at, tsec, tslot))
            if tsec == main[0] and main[1] <= tslot < main[2]:
                continue
            if tsec not in obj.programs:
                raise ElfError(f"call into section {tsec!r} that bpfpatch cannot link", section=sec)
            fn = funcs.at(tsec, tslot)
            if (tsec, fn.slot) in placed:
                continue
            # A subprogram (in .text or the same section): append its function, like libbpf.
            piece = (tsec, fn.slot, fn.slot + max(fn.size_slots, 1))
            placed[(tsec, fn.slot)] = total
            pieces.append(piece)
            total += piece[2] - piece[1]
            stack.append(((sec, start, end), slot))
            stack.append((piece, piece[1]))
            break
    slots = np.concatenate([obj.programs[s].slots[a:b] for s, a, b in pieces]) if pieces else np.empty(0, SLOT_DTYPE)

    def new_slot(sec: str, slot: int) -> int:
        if sec == main[0] and main[1] <= slot < main[2]:
            return slot - main[1]
        fn = funcs.at(sec, slot)
        if (sec, fn.slot) not in placed:
            raise ElfError(f"slot {slot} of {sec} was not linked", section=sec)
        return placed[(sec, fn.slot)] + slot - fn.slot

    for at, tsec, tslot in calls:
        slots["imm"][at] = new_slot(tsec, tslot) - at - 1
        if slots["code"][at] == LD_IMM64:  # a function's address: the kernel's pseudo-func load
            _set_src(slots, at, PseudoSrc.FUNC)
    for at, name, sec in kfuncs:  # as libbpf resolves them: the running kernel's BTF id
        try:
            btf_id = _kernel_function_id(obj, name)
        except BpfPatchError as exc:
            raise ElfError(f"call of extern function {name!r}: {exc}", section=sec) from exc
        slots["imm"][at], slots["off"][at] = btf_id or 0, 0  # libbpf: a weak kfunc the kernel lacks is called as id 0
        _set_src(slots, at, CallSrc.KFUNC)
    func_info: list[FuncInfo] = []
    line_info: list[LineInfo] = []
    core_relos = CoreRelos()
    map_refs = MapRefs()
    map_specs: dict[str, MapSpec] = {}
    within = _Slices()
    for s, a, b in pieces:
        prog = obj.programs[s]
        base = placed[(s, a)]
        func_info += [f._replace(insn_off=base + f.insn_off - a) for f in within(s, "func_info", prog.func_info, a, b)]
        line_info += [li._replace(insn_off=base + li.insn_off - a) for li in within(s, "line_info", prog.line_info, a, b)]
        core_relos += [c._replace(insn_off=base + c.insn_off - a) for c in within(s, "core_relos", prog.core_relos, a, b)]
        for r in within(s, "relocations", prog.meta["relocations"], a, b, "slot"):
            if r.type != R_BPF_64_64 or r.symbol_section in obj.programs:
                continue  # (a function's address was linked above)
            at = base + r.slot - a
            if r.symbol_section.startswith(GLOBAL_DATA_PREFIXES) and r.symbol_section in obj.data_sections:
                value_off = r.symbol_value + int(slots["imm"][at])
                map_refs[at] = (r.symbol_section, value_off)
                if r.symbol_section not in map_specs:
                    data = obj.data_sections[r.symbol_section]
                    map_specs[r.symbol_section] = MapSpec(r.symbol_section[:15], 2, 4, max(len(data), 1), 1, 0, data)
            elif r.symbol_section == UNDEFINED and r.symbol in obj.kconfig:
                ext = obj.kconfig[r.symbol]
                map_refs[at] = (KCONFIG_SECTION, ext.offset + int(slots["imm"][at]))
                if KCONFIG_SECTION not in map_specs:  # libbpf's read-only .kconfig map, filled for this kernel
                    data = kconfig_data(list(obj.kconfig.values()), byteorder=obj.byteorder)
                    map_specs[KCONFIG_SECTION] = MapSpec(KCONFIG_SECTION, 2, 4, max(len(data), 1), 1, 0, data)
            elif r.symbol in obj.maps:
                d = obj.maps[r.symbol]
                map_refs[at] = (r.symbol, None)
                i = d.get("inner")
                inner = MapSpec("", i["map_type"], i["key_size"], i["value_size"], i["max_entries"], i["flags"]) if i else None
                map_specs[r.symbol] = MapSpec(r.symbol, d["map_type"], d["key_size"], d["value_size"], d["max_entries"],
                                              d["flags"], inner=inner)
            elif r.symbol_section == UNDEFINED:
                _ksym_address(obj, slots, at, r.symbol, s)
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
              LINKED_FROM: tuple((s, a, b, placed[(s, a)]) for s, a, b in pieces),
              **({CORE_RELOS: core_relos} if core_relos else {}),
              **({EXCEPTION_CALLBACK: exc} if (exc := exception_callback(obj, func_info)) is not None else {})},
    )


#: Program.meta key: where each piece of a linked program came from, as (section, first slot, end slot,
#: first slot in the linked program), in layout order (the entry section's piece first).
LINKED_FROM = "linked_from"

#: Program.meta key: the function an ``exception_callback:`` BTF declaration tag on the program's entry names
#: ("" where it names none: the kernel adds its default, ``r0 = r1; exit``); absent where the object has no BTF.
EXCEPTION_CALLBACK = "exception_callback"


def exception_callback(obj: ElfModel, func_info: list) -> str | None:
    """The program's exception callback as the kernel finds it (bpf_find_exception_callback_insn_off): the
    name in the ``exception_callback:`` declaration tag on its entry function's FUNC, "" for none, None when
    the object has no BTF or no func_info to tell."""
    btf = obj.btf
    entry = next((f for f in func_info if f.insn_off == 0), None)
    if btf is None or entry is None:
        return None
    for tid in range(1, btf.type_count):
        t = btf.type(tid)
        if t.kind == BtfKind.DECL_TAG and t.size_or_type == entry.type_id and t.name.startswith("exception_callback:"):
            return t.name.partition(":")[2]
    return ""
