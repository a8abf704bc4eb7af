"""Input formats, auto-detected: BPF ELF objects, raw instruction bytes, text assembly."""

from __future__ import annotations

from pathlib import Path

from bpfpatch.errors import AsmError, BpfPatchError, DecodeError, ElfError
from bpfpatch.program import Program

FORMATS = ("auto", "elf", "raw", "asm")


def detect(data: bytes) -> str:
    """'elf', 'asm' (UTF-8 text) or 'raw'."""
    if data[:4] == b"\x7fELF":
        return "elf"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "raw"
    printable = sum(ch.isprintable() or ch in "\n\r\t" for ch in text)
    return "asm" if text and printable == len(text) else "raw"


def read_programs(path: str | Path, *, fmt: str = "auto") -> dict[str, Program]:
    """Every program in the file: one per executable ELF section, or one for raw/asm input."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BpfPatchError(f"{path}: {exc.strerror}") from exc
    kind = detect(data) if fmt == "auto" else fmt
    if kind == "elf":
        from bpfpatch.elf import read_object

        return dict(read_object(data).programs)
    if kind == "asm":
        from bpfpatch.asm import assemble

        return {path.stem: Program.from_insns(assemble(data.decode("utf-8")), name=path.stem)}
    return {path.stem: Program.from_bytes(data, name=path.stem)}


def default_section(names: list[str]) -> str:
    """The program a command works on when none is named: the first that is not `.text`."""
    rest = [n for n in names if n != ".text"]
    return (rest or names)[0]


def _magic(path: str | Path) -> bytes:
    """The file's first four bytes (not the whole file again)."""
    try:
        with open(path, "rb") as f:
            return f.read(4)
    except OSError as exc:
        raise BpfPatchError(f"{path}: {exc.strerror}") from exc


def read_program(path: str | Path, *, section: str | None = None, fmt: str = "auto", linked: bool = False) -> Program:
    """One program from a file; `section` picks an ELF section (error names the ones there are).

    ``linked=True`` links an ELF section with the `.text` functions it calls and
    records its map references, ready for the kernel.
    """
    progs = read_programs(path, fmt=fmt)
    if not progs:
        raise ElfError(f"{path}: no program sections")
    is_elf = _magic(path) == b"\x7fELF"
    if len(progs) == 1 and not is_elf:
        section = None  # raw bytes and text hold one program: --section names an ELF section
    name = section or default_section(list(progs))
    if linked and is_elf:
        from bpfpatch.elf import read_object

        # `section` may also be "section:function" or a function name (several programs per section).
        return read_object(path).linked_program(name)
    if name not in progs:
        raise ElfError(f"{path}: no program section {name!r} (have: {', '.join(progs)})")
    return progs[name]


__all__ = ["FORMATS", "detect", "read_program", "read_programs", "default_section", "AsmError", "DecodeError"]
