"""The command line: one clear line and an exit code on errors, atomic outputs."""

from __future__ import annotations

import struct

import pytest

from bpfpatch.cli import main


def raw(*rows):
    return b"".join(struct.pack("<BBhi", c, d | (s << 4), o, i) for c, d, s, o, i in rows)


DIV = raw((0xB7, 0, 0, 0, 7), (0xB7, 1, 0, 0, 2), (0x3F, 0, 1, 0, 0), (0x95, 0, 0, 0, 0))


def test_disasm_asm_round_trip(tmp_path, capsys):
    src = tmp_path / "p.bin"
    src.write_bytes(DIV)
    assert main(["disasm", str(src)]) == 0
    text = capsys.readouterr().out
    assert "r0 /= r1" in text
    s = tmp_path / "p.s"
    s.write_text(text)
    assert main(["asm", str(s), "-o", str(tmp_path / "back.bin")]) == 0
    assert (tmp_path / "back.bin").read_bytes() == DIV
    assert main(["disasm", str(src), "--style", "kernel"]) == 0
    assert "(3f) r0 /= r1" in capsys.readouterr().out


@pytest.mark.parametrize(
    "content, message",
    [(DIV[:-3], "not a multiple of 8"), (raw((0xFF, 0, 0, 0, 0)), "unknown opcode"), (b"r0 = frobnicate\n", "not an eBPF instruction")],
)
def test_bad_input_is_one_line_and_exit_1(tmp_path, capsys, content, message):
    src = tmp_path / "bad.bin"
    src.write_bytes(content)
    out = tmp_path / "out.bin"
    assert main(["patch", str(src), "-o", str(out), "--pass", "div-guard"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bpfpatch: error:") and message in err[0]
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [src]  # no temp file left behind


def test_unknown_pass(tmp_path, capsys):
    src = tmp_path / "p.bin"
    src.write_bytes(DIV)
    assert main(["patch", str(src), "-o", str(tmp_path / "o"), "--pass", "nope"]) == 1
    assert "unknown pass 'nope'" in capsys.readouterr().err


def test_patch_div_guard(tmp_path, capsys):
    src = tmp_path / "p.bin"
    src.write_bytes(DIV)
    out = tmp_path / "o.bin"
    assert main(["patch", str(src), "-o", str(out), "--pass", "div-guard"]) == 0
    assert len(out.read_bytes()) == 7 * 8


@pytest.mark.kernel
def test_check_verdicts_and_exit_codes(tmp_path, capsys):
    a = tmp_path / "a.bin"
    b = tmp_path / "b.bin"
    c = tmp_path / "c.bin"
    a.write_bytes(raw((0xB7, 0, 0, 0, 1), (0x95, 0, 0, 0, 0)))
    b.write_bytes(raw((0xB7, 0, 0, 0, 1), (0x95, 0, 0, 0, 0)))
    c.write_bytes(raw((0xB7, 0, 0, 0, 2), (0x95, 0, 0, 0, 0)))
    assert main(["check", str(a), str(b), "--inputs", "8"]) == 0
    assert "no difference found" in capsys.readouterr().out
    assert main(["check", str(a), str(c), "--inputs", "8"]) == 1
    assert "different" in capsys.readouterr().out
    assert main(["check", str(a), str(b), "--prog-type", "kprobe"]) == 2


@pytest.mark.kernel
def test_patch_then_check_a_clang_program(tmp_path, capsys, objdir):
    from conftest import PROGS, compile_bpf

    obj = compile_bpf(PROGS / "kernel" / "filters.c", objdir)
    out = tmp_path / "xdp.bin"
    assert main(["patch", str(obj), "--section", "xdp", "--linked", "--pass", "div-guard,dce", "-o", str(out)]) == 0
    assert main(["check", str(obj), str(out), "--section", "xdp", "--prog-type", "xdp"]) == 0
    assert "no difference found" in capsys.readouterr().out


def test_demo_runs(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "if w3 != 0 goto +2" in out


def test_keep_freed_memory_is_idempotent():
    """The CLI's allocator tuning applies on glibc and may be called again."""
    import platform

    from bpfpatch.runtime import keep_freed_memory

    first = keep_freed_memory()
    assert keep_freed_memory() == first
    if platform.libc_ver()[0] == "glibc":
        assert first is True


def test_top_level_help_lists_every_registered_command(capsys):
    # `bpfpatch --help` is printed without importing the commands: its table must say what they say.
    import subprocess
    import sys

    from bpfpatch.cli import _COMMANDS, _load_commands
    from bpfpatch.cli.app import app

    _load_commands([])
    registered = {c.name or c.callback.__name__: " ".join((c.help or c.callback.__doc__).strip().split("\n\n")[0].split())
                  for c in app.registered_commands}
    assert registered == _COMMANDS
    assert main(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith("Usage: bpfpatch [OPTIONS] COMMAND")
    assert all(f"{name} {text}" in out for name, text in _COMMANDS.items())
    # And in a fresh process it imports neither the commands nor NumPy, typer or rich.
    code = ("import sys; from bpfpatch.cli import main; main(['--help']); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'typer', 'rich') or m.endswith('_cmd')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.kernel
def test_patch_kernel_reads_kfuncs_from_the_kernels_btf(tmp_path):
    """`patch --pass kernel` gives the analysis this kernel's kfunc prototypes: bpf_cast_to_kern_ctx is
    known (and becomes r0 = r1, as fixup_kfunc_call makes it), not an unknown call."""
    from bpfpatch.btf.vmlinux import kernel_btf_available, kfunc_id

    if not kernel_btf_available():
        pytest.skip("no /sys/kernel/btf/vmlinux")
    src = tmp_path / "k.bin"
    src.write_bytes(raw((0x85, 0, 2, 0, kfunc_id("bpf_cast_to_kern_ctx")), (0xB7, 0, 0, 0, 0), (0x95, 0, 0, 0, 0)))
    out = tmp_path / "o.bin"
    assert main(["patch", str(src), "-o", str(out), "--pass", "kernel", "--prog-type", "sched_cls"]) == 0
    assert out.read_bytes()[:8] == raw((0xBF, 0, 1, 0, 0))
