"""Sections no program type names (suricata's ``filter`` and ``loadbalancer``): bpfpatch refuses them as libbpf
does, with a typed error naming the section and --prog-type, and takes them with --prog-type as suricata's
loader does (tests/progs/thirdparty/untyped_section.c)."""

from __future__ import annotations

import pytest

from bpfpatch.cli import main
from bpfpatch.kernel.libbpf import LibbpfError, MissingProgType, load_object
from conftest import PROGS, compile_bpf



@pytest.fixture(scope="module")
def untyped(tmp_path_factory):
    return compile_bpf(PROGS / "thirdparty" / "untyped_section.c", tmp_path_factory.mktemp("untyped"), clang="clang")


def _libbpf_log(obj) -> str:
    """libbpf's own words on the object, its type inference left alone (bpf_object__load)."""
    import ctypes
    import os

    from bpfpatch.kernel.libbpf import ObjectOpenOpts, _Capture, libbpf

    lib = libbpf()
    opts = ObjectOpenOpts(sz=ctypes.sizeof(ObjectOpenOpts))
    with _Capture() as lines:
        handle = lib.bpf_object__open_file(os.fsencode(obj), ctypes.byref(opts))
        assert handle
        try:
            rc = lib.bpf_object__load(handle)
        finally:
            lib.bpf_object__close(handle)
    assert rc != 0
    return "".join(lines)


@pytest.mark.kernel
def test_libbpf_refuses_the_section_and_so_do_we(untyped):
    assert "missing BPF prog type, check ELF section name 'filter'" in _libbpf_log(untyped)
    with pytest.raises(MissingProgType, match=r"program 'hashfilter': section 'filter' names no program type.*--prog-type"):
        with load_object(untyped, programs=["hashfilter"]):
            pass
    assert issubclass(MissingProgType, LibbpfError)
    with load_object(untyped, prog_type="socket_filter") as obj:  # suricata's loader: bpf_program__set_type
        assert obj.programs["hashfilter"].loaded and obj.programs["lb"].loaded


@pytest.mark.kernel
def test_analyze_names_the_section_instead_of_guessing_a_socket_filter(untyped, capsys):
    for sec in ("filter", "loadbalancer"):
        assert main(["analyze", str(untyped), "--section", sec]) == 1
        err = capsys.readouterr().err
        assert f"section '{sec}' names no program type" in err and "--prog-type" in err and str(untyped) in err
        assert main(["analyze", str(untyped), "--section", sec, "--prog-type", "socket_filter"]) in (0, None)
        assert "processed" in capsys.readouterr().out


@pytest.mark.kernel
def test_check_is_an_input_error_naming_the_section_and_runs_with_the_type(untyped, tmp_path, capsys):
    out = tmp_path / "dce.o"
    assert main(["patch", str(untyped), "-o", str(out), "--pass", "dce,div-guard"]) in (0, None)
    capsys.readouterr()
    rc = main(["check", str(untyped), str(out), "--inputs", "20", "--seconds", "1"])
    err = capsys.readouterr().err
    assert rc == 64, err
    assert "program 'hashfilter': section 'filter' names no program type" in err and "--prog-type" in err
    rc = main(["check", str(untyped), str(out), "--inputs", "50", "--seconds", "2", "--prog-type", "socket_filter"])
    text = capsys.readouterr().out
    assert rc == 0 and "hashfilter: no difference found" in text and "lb: no difference found" in text


@pytest.mark.kernel
def test_check_prove_names_the_section_and_proves_with_the_type(untyped, tmp_path, capsys):
    out = tmp_path / "blind.o"
    assert main(["patch", str(untyped), "-o", str(out), "--pass", "blind"]) in (0, None)
    capsys.readouterr()
    # a usage error (64), not 1, which --prove's exit codes give a counterexample
    assert main(["check", "--prove", str(untyped), str(out), "--section", "loadbalancer"]) == 64
    err = capsys.readouterr().err
    assert "section 'loadbalancer' names no program type" in err and "--prog-type" in err and str(untyped) in err
    rc = main(["check", "--prove", str(untyped), str(out), "--section", "loadbalancer", "--prog-type", "socket_filter"])
    assert rc == 0 and "proved equivalent" in capsys.readouterr().out


def test_check_prove_exits_64_on_an_input_it_cannot_read(untyped, capsys):
    # exit 1 is a counterexample under --prove: bpftop's pid_iter (a ksym this kernel lacks) read as one
    assert main(["check", "--prove", str(untyped), str(untyped), "--section", "nosuch"]) == 64
    assert "nosuch" in capsys.readouterr().err
