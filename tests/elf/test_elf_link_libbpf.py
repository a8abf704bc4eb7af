"""The linker against libbpf: a linked program (`ElfObject.linked_program`, what `analyze`, the
prover and the kernel tests run) holds the instructions libbpf loads, in libbpf's layout.

libbpf appends subprograms depth first (``bpf_object__reloc_code``), makes a callback's address
(an ld_imm64 clang relocates against the code section) a pseudo-func load, and resolves an extern
kernel function to its BTF id in the running kernel.  Compared per instruction with libbpf's own
relocated program (``bpf_program__insns`` after loading), masked only where the two forms differ
by design: a map or global-data ld_imm64 (libbpf writes an fd; bpfpatch keeps the object's form
and `map_refs`), and an instruction with a CO-RE record (libbpf applies it at load).

Programs: tests/progs/elf/link_kinds.c (nested calls, a bpf_loop callback, iterator kfuncs, a map,
a section name with a colon), xdp-tools' objects, a seeded sample of libbpf-tools' objects,
cilium/ebpf's objects libbpf loads, and (slow) kernel selftest programs that use callbacks and kfuncs.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bpfpatch.cli import main
from bpfpatch.elf import read_object
from bpfpatch.errors import BpfPatchError
from bpfpatch.isa import decode_slots, slot_rows
from bpfpatch.isa.opcodes import CALL, LD_IMM64, CallSrc, PseudoSrc
from bpfpatch.kernel.libbpf import load_object
from conftest import PROGS, compile_bpf
from objcorpus import LIBBPF_TOOLS_PACKAGE, SELFTESTS, THIRD_PARTY, build_selftests, libbpf_tools_objects, loads

pytestmark = pytest.mark.kernel

CILIUM = sorted(p for p in Path("/usr/share/gocode/src/github.com/cilium/ebpf").rglob("*-el.elf") if not p.is_symlink())
#: Selftest programs whose programs use callbacks (bpf_loop, for_each, timers), kfuncs and iterators.
SELFTEST_NAMES = ["bpf_loop", "for_each_array_map_elem", "iters_num", "cgroup_iter", "test_global_data", "timer",
                  "iters_task_vma", "rcu_read_lock"]


def _comparable(rows: list[tuple[int, ...]], loader_owned: set[int]) -> list[tuple[int, ...]]:
    """Rows with what is one side's by design blanked: map / global-data ld_imm64s and CO-RE-relocated slots."""
    out = []
    i = 0
    while i < len(rows):
        r = list(rows[i])
        if i in loader_owned:
            out.append((0, 0, 0, 0, 0))
            if r[0] == LD_IMM64:
                out.append((0, 0, 0, 0, 0))
                i += 1
        elif r[0] == LD_IMM64:
            out += [tuple(r), tuple(rows[i + 1])]
            i += 1
        else:
            out.append(tuple(r))
        i += 1
    return out


def loader_owned(ours, lib_rows: list[tuple[int, ...]]) -> set[int]:
    """The slots the loader writes, blanked on both sides: our map references and CO-RE records, libbpf's map
    loads, and the second slot of each of our ld_imm64s among them.  libbpf poisons a CO-RE ld_imm64 it cannot
    resolve (an enumerator the kernel lacks) as two ``call 0xbad2310``: its rows there are no ld_imm64 any more
    (tests/progs/elf/core_poison.c)."""
    owned = set(ours.meta["map_refs"]) | {c.insn_off for c in ours.core_relos or ()} | _libbpf_view(lib_rows)
    mine = slot_rows(ours.slots)
    return owned | {i + 1 for i in owned if i + 1 < len(mine) and mine[i][0] == LD_IMM64}


def _libbpf_view(lib_rows: list[tuple[int, ...]]) -> set[int]:
    """Slots of libbpf's program where it wrote a map fd or a map value address."""
    return {i for i, r in enumerate(lib_rows) if r[0] == LD_IMM64 and r[2] in (PseudoSrc.MAP_FD, PseudoSrc.MAP_VALUE)}


def _agree(path: Path, names: list[str] | None = None) -> tuple[int, list[str]]:
    """(programs compared, the ones that differ) between our linked programs and libbpf's, for one object."""
    with load_object(path) as loaded:
        return agree_loaded(read_object(path.read_bytes()), loaded, names)


def agree_loaded(obj, loaded, names: list[str] | None = None) -> tuple[int, list[str]]:
    """(programs compared, the ones that differ) between `obj`'s linked programs and the ones libbpf loaded."""
    compared, differ = 0, []
    for prog in loaded.programs.values():
        if not prog.loaded or (names and prog.name not in names):
            continue
        try:
            ours = obj.linked_program(f"{prog.elf_section}:{prog.name}")
        except BpfPatchError as exc:
            differ.append(f"{prog.name}: refused: {exc}")
            continue
        lib = slot_rows(decode_slots(prog.insns()))
        mine = slot_rows(ours.slots)
        owned = loader_owned(ours, lib)
        if _comparable(lib, owned) != _comparable(mine, owned):
            differ.append(prog.name)
        compared += 1
    return compared, differ


@pytest.fixture(scope="module")
def link_kinds(tmp_path_factory) -> Path:
    return compile_bpf(PROGS / "elf" / "link_kinds.c", tmp_path_factory.mktemp("link"))


def test_our_programs_link_as_libbpf_loads_them(link_kinds):
    compared, differ = _agree(link_kinds)
    assert compared == 4 and differ == []


def test_a_co_re_ld_imm64_libbpf_poisons_is_still_the_loaders_slot(tmp_path):
    # libbpf writes two `call 0xbad2310` over a CO-RE ld_imm64 it cannot resolve (cilium/ebpf's relocs_enum):
    # both slots are the loader's, as the ld_imm64 they were in our program
    path = compile_bpf(PROGS / "elf" / "core_poison.c", tmp_path)
    with load_object(path) as loaded:
        lib = slot_rows(decode_slots(loaded.programs["poisoned_enum"].insns()))
        assert sum(r[0] == CALL and r[4] == 0xBAD2310 for r in lib) == 2  # the case is there: both slots poisoned
        assert agree_loaded(read_object(path.read_bytes()), loaded) == (1, [])


def test_subprograms_are_appended_depth_first_as_libbpf_does(link_kinds):
    prog = read_object(link_kinds.read_bytes()).linked_program("socket:nested_calls")
    # nested_calls -> both -> (left -> leaf), right: libbpf lays out both, left, leaf, right
    starts = prog.subprogs[1:]
    calls = {i: i + 1 + insn.imm for i, insn in zip(prog.insn_slots().tolist(), prog.insns)
             if insn.code == CALL and insn.src == CallSrc.PSEUDO_CALL}
    assert sorted(set(calls.values())) == starts
    assert len(starts) == 4
    # In slot order the calls are main -> both, both -> left, both -> right, left -> leaf.  Depth first, leaf
    # comes right after left (before right); breadth first would give the starts in call order.
    assert [calls[i] for i in sorted(calls)] == [starts[0], starts[1], starts[3], starts[2]]


def test_a_callback_address_becomes_a_pseudo_func_load(link_kinds):
    prog = read_object(link_kinds.read_bytes()).linked_program("socket:loop_callback")
    funcs = [(i, insn) for i, insn in zip(prog.insn_slots().tolist(), prog.insns)
             if insn.code == LD_IMM64 and insn.src == PseudoSrc.FUNC]
    assert len(funcs) == 1
    i, insn = funcs[0]
    assert i + 1 + insn.imm in prog.subprogs


def test_extern_kernel_functions_get_their_btf_ids(link_kinds):
    from bpfpatch.btf.vmlinux import kernel_btf_available, kfunc_id

    if not kernel_btf_available():
        pytest.skip("no kernel BTF (/sys/kernel/btf/vmlinux) to resolve kfuncs in")
    prog = read_object(link_kinds.read_bytes()).linked_program("socket:iterator_kfuncs")
    kfuncs = [insn.imm for insn in prog.insns if insn.code == CALL and insn.src == CallSrc.KFUNC]
    want = [kfunc_id(name) for name in ("bpf_iter_num_new", "bpf_iter_num_next", "bpf_iter_num_destroy")]
    assert list(dict.fromkeys(kfuncs)) == want  # in first-call order (clang may call next twice)


def test_analyze_reads_callbacks_kfuncs_and_colon_sections(link_kinds, capsys):
    for section in ("socket:loop_callback", "socket:iterator_kfuncs", "socket:nested_calls"):
        assert main(["analyze", str(link_kinds), "--section", section]) == 0, section
        assert "processed" in capsys.readouterr().out
    obj = read_object(link_kinds.read_bytes())
    assert obj.linked_program("uprobe/libc.so.6:fopen").slots.tobytes() == \
        obj.linked_program("uprobe/libc.so.6:fopen:colon_section").slots.tobytes()


@pytest.mark.parametrize("path", THIRD_PARTY, ids=lambda p: p.name)
def test_xdp_tools_programs_link_as_libbpf_loads_them(path):
    if not loads(path.read_bytes(), path.name)[0]:
        pytest.skip(f"{path.name} does not load here")
    compared, differ = _agree(path)
    assert compared and differ == []


def test_libbpf_tools_sample_links_as_libbpf_loads_them(tmp_path_factory):
    paths = libbpf_tools_objects(tmp_path_factory.mktemp("lbt"))
    if not paths:
        pytest.skip(f"Debian's {LIBBPF_TOOLS_PACKAGE} is not installed")
    total = 0
    for path in random.Random(16).sample(paths, 8):
        if not loads(path.read_bytes(), path.name)[0]:
            continue
        compared, differ = _agree(path)
        assert differ == [], path.name
        total += compared
    assert total


def test_cilium_objects_link_as_libbpf_loads_them():
    usable = [p for p in CILIUM if loads(p.read_bytes(), p.name)[0]]
    if not usable:
        pytest.skip("cilium/ebpf's test objects are not installed (golang-github-cilium-ebpf-dev)")
    for path in usable:
        compared, differ = _agree(path)
        assert differ == [], path.name


@pytest.mark.slow
def test_selftest_callback_and_kfunc_programs_link_as_libbpf_loads_them(tmp_path_factory):
    import shutil

    if not (SELFTESTS / "progs").is_dir() or shutil.which("clang-19") is None:
        pytest.skip("the kernel's selftest sources (linux-source-6.12) or clang-19 are missing")
    built = build_selftests(tmp_path_factory.mktemp("selftests"), SELFTEST_NAMES)
    total = 0
    for path in built:
        if not loads(path.read_bytes(), path.name)[0]:
            continue
        compared, differ = _agree(path)
        assert differ == [], path.name
        total += compared
    assert total >= 10


@pytest.fixture(scope="module")
def ksyms_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ksyms")


def _ksym_loads(prog) -> dict[int, tuple[int, int, int]]:
    """slot -> (src, imm, imm of the second slot) of every ld_imm64 of `prog`."""
    rows = slot_rows(prog.slots)
    return {i: (r[2], r[4], rows[i + 1][4]) for i, r in enumerate(rows[:-1]) if r[0] == LD_IMM64}


def test_typeless_and_weak_ksyms_link_as_libbpf_loads_them(ksyms_dir):
    from bpfpatch.elf.ksyms import kallsyms_address

    path = compile_bpf(PROGS / "elf" / "ksyms.c", ksyms_dir)
    assert _agree(path) == (1, [])
    text = kallsyms_address("_stext")
    assert text  # root reads the kernel's addresses
    loads_ = _ksym_loads(read_object(path.read_bytes()).linked_program("raw_tp/sys_enter"))
    values = {(imm & 0xFFFFFFFF) | (hi & 0xFFFFFFFF) << 32 for src, imm, hi in loads_.values() if src == 0}
    assert text in values and 0 in values


def test_a_typed_ksym_is_a_btf_id_load_of_its_kernel_var(tmp_path):
    import re
    import shutil
    import subprocess

    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed")
    path = compile_bpf(PROGS / "elf" / "ksyms.c", tmp_path, extra=("-DTYPED",))
    dump = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux"], capture_output=True,
                          text=True, check=True).stdout
    (var_id,) = re.findall(r"^\[(\d+)\] VAR 'bpf_prog_active'", dump, re.M)
    loads_ = _ksym_loads(read_object(path.read_bytes()).linked_program("raw_tp/sys_enter"))
    assert [v for v in loads_.values() if v[0] == PseudoSrc.BTF_ID] == [(PseudoSrc.BTF_ID, int(var_id), 0)]


def test_a_strong_ksym_the_kernel_lacks_is_refused_by_name(tmp_path):
    path = compile_bpf(PROGS / "elf" / "ksyms.c", tmp_path, extra=("-DSTRONG_MISSING",))
    with pytest.raises(BpfPatchError, match="extern \\(ksym\\) 'bpfpatch_strong_sym' \\(strong\\)") as exc:
        read_object(path.read_bytes()).linked_program("raw_tp/sys_enter")
    assert exc.value.section == "raw_tp/sys_enter"


def test_kallsyms_names_an_ambiguous_symbol(tmp_path):
    from bpfpatch.elf.ksyms import kallsyms_address

    table = tmp_path / "kallsyms"
    table.write_text("ffffffff81000000 T _stext\nffffffff81000010 t twice\nffffffff81000020 t twice [mod]\n")
    assert kallsyms_address("_stext", str(table)) == 0xFFFFFFFF81000000
    assert kallsyms_address("absent", str(table)) is None
    with pytest.raises(BpfPatchError, match="'twice': resolution is ambiguous"):
        kallsyms_address("twice", str(table))
    damaged = tmp_path / "damaged"
    damaged.write_text("not-hex T x\n")
    with pytest.raises(BpfPatchError, match="line 1: bad address"):
        kallsyms_address("x", str(damaged))


#: Declared types of `bpf_prog_active` (an int in the kernel) and whether libbpf's type check takes them.
KSYM_DECLARATIONS = {"int": True, "unsigned long": True, "bpfpatch_int_t": True, "struct bpfpatch_not_an_int": False,
                     "int *": False}


@pytest.mark.parametrize("declared", sorted(KSYM_DECLARATIONS))
def test_a_typed_ksym_of_another_type_is_refused_as_libbpf_refuses_it(tmp_path, declared):
    """libbpf compares a typed ksym's declared type with the kernel variable's (``bpf_core_types_are_compat``:
    kinds after typedefs, any integer with any integer) before it loads anything; the linker refuses the
    same declarations, naming the slot, the variable and both types, and links the others."""
    from bpfpatch.btf.vmlinux import kernel_btf_available
    from bpfpatch.kernel.libbpf import LibbpfError, libbpf_available, load_object

    if not kernel_btf_available():
        pytest.skip("the running kernel has no BTF (/sys/kernel/btf/vmlinux)")
    path = compile_bpf(PROGS / "elf" / "ksyms.c", tmp_path, extra=(f"-DTYPED_AS={declared}",))
    compatible = KSYM_DECLARATIONS[declared]
    obj = read_object(path.read_bytes())
    if compatible:
        loads_ = _ksym_loads(obj.linked_program("raw_tp/sys_enter"))
        assert [v[0] for v in loads_.values()].count(PseudoSrc.BTF_ID) == 1
    else:
        with pytest.raises(BpfPatchError, match="extern \\(var ksym\\) 'bpf_prog_active' of incompatible type") as exc:
            obj.linked_program("raw_tp/sys_enter")
        assert exc.value.section == "raw_tp/sys_enter" and "the running kernel has [" in str(exc.value)
    usable, why = libbpf_available()
    if not usable:
        pytest.skip(f"libbpf: {why}")
    log = ""
    try:
        with load_object(path.read_bytes(), name=path.name):
            pass  # a kernel with CONFIG_KALLSYMS_ALL loads it; this one refuses the compatible ones later, ENOENT
    except LibbpfError as e:
        log = e.log or str(e)
    assert ("incompatible types" in log) == (not compatible), log
