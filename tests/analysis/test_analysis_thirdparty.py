"""Constructs found in third-party BPF programs (libbpf-bootstrap, bcc's libbpf-tools, katran, suricata,
inspektor-gadget, tracee, built from source with clang 14): each reproduced by a small program of
tests/progs/thirdparty/ and checked against the kernel or libbpf.
"""

from __future__ import annotations

import ctypes

import pytest

from bpfpatch.analysis.verifier import analyze
from bpfpatch.elf import read_object
from bpfpatch.progtype import SECTION_TYPES, ProgType, prog_type_of
from conftest import PROGS, compile_bpf


@pytest.fixture(scope="module")
def rodata_strings(tmp_path_factory):
    return compile_bpf(PROGS / "thirdparty" / "rodata_strings.c", tmp_path_factory.mktemp("thirdparty"), clang="clang")


def _string_loads(prog):
    refs = prog.meta["map_refs"]
    return sorted((slot, off, int(prog.slots["imm"][slot])) for slot, (name, off) in refs.items() if name == ".rodata")


def test_a_section_relative_rodata_address_is_the_string_offset_once(rodata_strings):
    prog = read_object(rodata_strings.read_bytes()).linked_program("socket")
    loads = _string_loads(prog)
    # clang relocates the second string against .rodata with its offset in the immediate
    assert len(loads) == 2 and any(imm != 0 and off == imm for _, off, imm in loads)
    result = analyze(prog, "socket_filter", keep_states=True)
    for slot, off, _ in loads:
        states = result.aux[slot + 2].states  # before the instruction after the ld_imm64
        assert states and all(st.regs[1].off == off for st in states)


@pytest.mark.kernel
def test_the_program_the_kernel_loads_is_accepted(rodata_strings):
    from bpfpatch.kernel.libbpf import load_object

    with load_object(rodata_strings, programs=["two_messages"]) as obj:
        assert obj.programs["two_messages"].loaded
    analyze(read_object(rodata_strings.read_bytes()).linked_program("socket"), "socket_filter")


def _libbpf_type(name: str) -> int | None:
    from bpfpatch.kernel.libbpf import libbpf

    fn = libbpf().libbpf_prog_type_by_name
    fn.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]
    fn.restype = ctypes.c_int
    ptype, attach = ctypes.c_int(), ctypes.c_int()
    return ptype.value if fn(name.encode(), ctypes.byref(ptype), ctypes.byref(attach)) == 0 else None


def test_section_names_give_libbpfs_program_types():
    pytest.importorskip("bpfpatch.kernel.libbpf")
    compared = 0
    for prefix, ptype in SECTION_TYPES.items():
        for name in (prefix, prefix + "/some_target"):
            theirs = _libbpf_type(name)
            if theirs is None:  # a name this libbpf (Debian's 1.1) does not know yet, or not without a target
                continue
            assert prog_type_of(name) == ProgType(theirs), name
            compared += 1
    assert compared > 60
    assert prog_type_of("tp_btf/block_rq_issue") == ProgType.TRACING
    assert prog_type_of("uretprobe/readline") == ProgType.KPROBE
    assert prog_type_of("kprobe__sys_open") == ProgType.KPROBE  # the looser rule of older loaders stays


def test_analyze_reads_a_uretprobe_as_a_kprobe(rodata_strings, capsys):
    from bpfpatch.cli import main

    assert main(["analyze", str(rodata_strings), "--section", "uretprobe/readline"]) in (0, None)


@pytest.mark.kernel
def test_a_hidden_global_function_is_verified_as_static_as_libbpf_loads_it(tmp_path_factory, capsys):
    from bpfpatch.cli import main
    from bpfpatch.kernel.libbpf import load_object

    obj = compile_bpf(PROGS / "thirdparty" / "hidden_subprog.c", tmp_path_factory.mktemp("hidden"), clang="clang")
    assert read_object(obj.read_bytes()).hidden_funcs == {"fill"}
    with load_object(obj) as loaded:
        assert loaded.programs["hidden_callee"].loaded
    assert main(["analyze", str(obj), "--section", "socket"]) in (0, None)
    assert "mem_or_null" not in capsys.readouterr().out


@pytest.mark.kernel
def test_an_attach_target_the_kernel_lacks_is_named_not_a_violation(tmp_path_factory, capsys):
    from bpfpatch.cli import main
    from bpfpatch.btf.vmlinux import kernel_types
    from bpfpatch.kernel.libbpf import LibbpfError, load_object

    if kernel_types() is None:
        pytest.skip("no kernel BTF (/sys/kernel/btf/vmlinux)")
    obj = compile_bpf(PROGS / "thirdparty" / "runtime_target.c", tmp_path_factory.mktemp("target"), clang="clang")
    with pytest.raises(LibbpfError):
        with load_object(obj):
            pass
    capsys.readouterr()
    assert main(["analyze", str(obj), "--section", "fentry/bpfpatch_dummy_target"]) == 1
    err = capsys.readouterr().err
    assert "section fentry/bpfpatch_dummy_target" in err and "'bpfpatch_dummy_target' is not in the running kernel's BTF" in err
    assert "invalid mem access" not in err


@pytest.mark.kernel
def test_a_section_marked_not_to_autoload_has_the_type_of_its_name(tmp_path_factory, capsys):
    from bpfpatch.cli import main
    from bpfpatch.btf.ctxargs import section_ctx_layout
    from bpfpatch.btf.vmlinux import kernel_types
    from bpfpatch.kernel.libbpf import load_object

    obj = compile_bpf(PROGS / "thirdparty" / "optional_section.c", tmp_path_factory.mktemp("optional"), clang="clang")
    with load_object(obj, programs=["first_byte"]) as loaded:  # autoload asked for: libbpf's own type, no override
        assert loaded.programs["first_byte"].loaded
        assert loaded.programs["first_byte"].prog_type is ProgType.XDP
    assert prog_type_of("?xdp") is ProgType.XDP and prog_type_of("?tc") is ProgType.SCHED_CLS
    assert main(["analyze", str(obj), "--section", "?xdp"]) in (0, None)
    assert "invalid mem access" not in capsys.readouterr().err
    kt = kernel_types()
    if kt is not None:  # the BTF context of a ?fentry section is its target's, as without the mark
        assert section_ctx_layout(kt, "?fentry/do_unlinkat") == section_ctx_layout(kt, "fentry/do_unlinkat") is not None


# bcc's cpufreq as clang-19 -mcpu=v4 builds it (u64 slot = freq_mhz / 200, clamped, an array index): the kernel
# leaves a 32-bit division's destination unknown in all 64 bits (adjust_scalar_min_max_vals returns before the
# zero extension: BPF_DIV is not "safe to compute"), so the index's smin is S64_MIN and check_reg_sane_offset
# refuses the pointer add itself; here the pointer is never used, so analyze, which lacked that check, accepted
# what the kernel refuses
DIV32_INDEX = """
r1 = *(u32 *)(r1 + 0)
w1 /= 200
if w1 < 25 goto +1
w1 = 25
r1 <<= 2
r2 = r10
r2 += -104
r2 += r1
r0 = 0
exit
"""
SANE = "math between fp pointer and register with unbounded min value is not allowed"


def test_a_32bit_quotient_as_a_64bit_index_is_refused_at_the_pointer_add():
    from bpfpatch.analysis.verifier import AnalysisError
    from bpfpatch.asm import assemble
    from bpfpatch.program import Program

    prog = Program.from_insns(assemble(DIV32_INDEX))
    with pytest.raises(AnalysisError) as exc:
        analyze(prog, "socket_filter")
    assert exc.value.index == 7 and exc.value.message == SANE


@pytest.mark.kernel
def test_the_kernel_refuses_the_32bit_quotient_index_as_analyze_does():
    from bpfpatch.asm import assemble
    from bpfpatch.errors import VerifierError
    from bpfpatch.kernel.loader import load_program
    from bpfpatch.program import Program

    with pytest.raises(VerifierError) as exc:
        load_program(Program.from_insns(assemble(DIV32_INDEX)), "socket_filter", log_level=1)
    assert SANE in exc.value.log
