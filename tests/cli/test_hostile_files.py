"""File-system failures: one `bpfpatch: error:` line naming the path and the reason, exit 1, nothing left.

Read-only and full file systems are small tmpfs mounts the tests make and remove (root only: skipped
with the reason otherwise); no permission is tested in a child that drops to user nobody.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bpfpatch.cli import main
from bpfpatch.errors import FileError
from bpfpatch.fileio import STALE_SECONDS, remove_stale_temps, temp_name, write_atomic

ASM = "r0 = 1\nr1 = 2\nr0 /= r1\nexit\n"
NOBODY = 65534


def run(argv: list[str], capsys) -> tuple[int, str]:
    rc = main(argv)
    err = capsys.readouterr().err
    return rc, err


def one_error_line(err: str, *words: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("bpfpatch: error: "), err
    for w in words:
        assert w in lines[0], err


@pytest.fixture
def src(tmp_path) -> Path:
    p = tmp_path / "prog.s"
    p.write_text(ASM)
    return p


def listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


@pytest.fixture
def mount(tmp_path):
    """mount(options) -> a fresh tmpfs directory, unmounted at the end."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    made: list[Path] = []

    def make(options: str) -> Path:
        d = tmp_path / f"mnt{len(made)}"
        d.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(d)], capture_output=True, text=True)
        if r.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
        made.append(d)
        return d

    yield make
    for d in reversed(made):
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


@pytest.mark.parametrize("command", ["asm", "patch"])
def test_missing_directory(command, src, tmp_path, capsys):
    out = tmp_path / "no" / "such" / "out.bin"
    argv = [command, str(src), "-o", str(out)] + (["--pass", "div-guard"] if command == "patch" else [])
    rc, err = run(argv, capsys)
    assert rc == 1
    one_error_line(err, str(out), "does not exist")
    assert listing(tmp_path) == ["prog.s"]


@pytest.mark.parametrize("command", ["asm", "patch"])
def test_output_is_a_directory(command, src, tmp_path, capsys):
    argv = [command, str(src), "-o", str(tmp_path)] + (["--pass", "div-guard"] if command == "patch" else [])
    rc, err = run(argv, capsys)
    assert rc == 1
    one_error_line(err, str(tmp_path), "is a directory")
    assert listing(tmp_path) == ["prog.s"] and listing(tmp_path.parent).count(tmp_path.name) == 1
    assert not [p for p in tmp_path.parent.iterdir() if ".bpfpatch-" in p.name]


@pytest.mark.parametrize("what", ["missing", "directory", "not utf-8"])
def test_unreadable_input_is_one_line(what, tmp_path, capsys):
    path = {"missing": tmp_path / "absent.s", "directory": tmp_path, "not utf-8": tmp_path / "bin.s"}[what]
    if what == "not utf-8":
        path.write_bytes(b"r0 = 1\n\xff\xfe\n")
    out = tmp_path / "out.bin"
    for argv in (["asm", str(path), "-o", str(out)], ["disasm", str(path)],
                 ["patch", str(path), "-o", str(out), "--pass", "dce"]):
        rc, err = run(argv, capsys)
        if what == "not utf-8" and argv[0] != "asm":
            continue  # not text: read as raw bytes by disasm/patch
        assert rc == 1, argv
        one_error_line(err, str(path))
    assert not out.exists()


def test_read_only_file_system(mount, src, capsys):
    d = mount("size=64k,mode=755,ro")
    out = d / "out.bin"
    rc, err = run(["asm", str(src), "-o", str(out)], capsys)
    assert rc == 1
    one_error_line(err, str(out), "Read-only file system")
    assert listing(d) == []


@pytest.mark.parametrize("command", ["asm", "patch"])
def test_full_file_system_leaves_nothing(command, mount, tmp_path, capsys):
    d = mount("size=16k,mode=755")
    big = tmp_path / "big.s"
    big.write_text("r1 = 1\n" + "r0 /= r1\n" * 4000 + "exit\n")  # 32 KB of instructions, 128 KB guarded
    out = d / "out.bin"
    argv = [command, str(big), "-o", str(out)] + (["--pass", "div-guard"] if command == "patch" else [])
    rc, err = run(argv, capsys)
    assert rc == 1
    one_error_line(err, str(out), "No space left on device")
    assert listing(d) == []


def test_full_file_system_keeps_the_file_it_would_replace(mount, tmp_path):
    d = mount("size=16k,mode=755")
    out = d / "keep.bin"
    out.write_bytes(b"old")
    with pytest.raises(FileError, match="No space left on device"):
        write_atomic(out, b"x" * (64 << 10))
    assert out.read_bytes() == b"old" and listing(d) == ["keep.bin"]


def test_no_permission():
    """A child process drops to user nobody after importing, then writes into a root-owned directory."""
    if os.geteuid() != 0:
        pytest.skip("dropping to another user needs root")
    import tempfile

    # pytest's tmp_path lives under a 0700 directory: nobody could not even read the input there.
    base = Path(tempfile.mkdtemp(prefix="bpfpatch-perm-"))
    try:
        os.chmod(base, 0o755)
        locked = base / "locked"
        locked.mkdir(mode=0o755)
        src = base / "prog.s"
        src.write_text(ASM)
        code = textwrap.dedent(f"""
            import os, sys
            import bpfpatch.cli as cli
            # One run as root first: every module the command needs is imported before /root is out of reach.
            assert cli.main(["asm", {str(src)!r}, "-o", {str(base / 'warm.bin')!r}]) == 0
            os.setgid({NOBODY}); os.setuid({NOBODY})
            sys.exit(cli.main(["asm", {str(src)!r}, "-o", {str(locked / 'out.bin')!r}]))
        """)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        assert r.returncode == 1, r.stderr
        one_error_line(r.stderr, str(locked / "out.bin"), "Permission denied")
        assert listing(locked) == []
    finally:
        shutil.rmtree(base)


def test_mode_follows_the_umask_or_the_replaced_file(src, tmp_path):
    out = tmp_path / "out.bin"
    old = os.umask(0o022)
    try:
        assert main(["asm", str(src), "-o", str(out)]) == 0
        assert stat.S_IMODE(out.stat().st_mode) == 0o644
        os.umask(0o077)
        out2 = tmp_path / "out2.bin"
        assert main(["asm", str(src), "-o", str(out2)]) == 0
        assert stat.S_IMODE(out2.stat().st_mode) == 0o600
        os.chmod(out, 0o640)
        assert main(["asm", str(src), "-o", str(out)]) == 0  # replacing keeps the file's mode
        assert stat.S_IMODE(out.stat().st_mode) == 0o640
    finally:
        os.umask(old)


def test_sigkill_mid_write_leaves_a_temp_the_next_run_removes(src, tmp_path):
    """A real SIGKILL between write and rename; the next write to the directory cleans up."""
    out = tmp_path / "out.bin"
    code = textwrap.dedent(f"""
        import os, signal
        import bpfpatch.fileio as fio
        os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)  # die after the data, before the rename
        fio.write_atomic({str(out)!r}, b"x" * 100000)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True)
    assert r.returncode == -signal.SIGKILL
    left = [p for p in tmp_path.iterdir() if ".bpfpatch-" in p.name]
    assert len(left) == 1 and left[0].name.startswith(".out.bin.bpfpatch-") and not out.exists()
    assert main(["asm", str(src), "-o", str(tmp_path / "other.bin")]) == 0
    assert listing(tmp_path) == ["other.bin", "prog.s"]


def test_stale_temps_of_live_processes_are_kept_until_old(tmp_path):
    mine = temp_name(tmp_path / "x.bin")
    mine.write_bytes(b"in progress")
    foreign = tmp_path / ".y.bin.bpfpatch-1-0123abcd.tmp"  # pid 1 is alive: another run in progress
    foreign.write_bytes(b"")
    unrelated = tmp_path / ".y.bin.tmp"
    unrelated.write_bytes(b"")
    assert remove_stale_temps(tmp_path) == []
    old = os.stat(foreign).st_mtime - STALE_SECONDS - 10
    os.utime(foreign, (old, old))
    assert remove_stale_temps(tmp_path) == [foreign]
    assert mine.exists() and unrelated.exists()
