"""Kernel symbol addresses, as libbpf reads them for a typeless ``__ksym`` extern.

A program declares ``extern const void _stext __ksym;`` and uses ``&_stext``; libbpf writes the
symbol's address from ``/proc/kallsyms`` into the ld_imm64 (``bpf_object__read_kallsyms_file``).
Only the kernel's visible symbols are there: without ``CONFIG_KALLSYMS_ALL`` no data symbol is, and
without root every address reads as 0.
"""

from __future__ import annotations

from functools import lru_cache

from bpfpatch.errors import ElfError

KALLSYMS = "/proc/kallsyms"


@lru_cache(maxsize=2)
def _addresses(path: str) -> tuple[dict[str, int], frozenset[str]]:
    """(name -> address, the names listed at two different addresses) of one kallsyms file."""
    try:
        text = open(path, encoding="utf-8", errors="replace").read()
    except OSError as exc:
        raise ElfError(f"{path}: cannot read the kernel's symbols ({exc.strerror})") from None
    out: dict[str, int] = {}
    ambiguous: set[str] = set()
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if len(parts) < 3:
            continue
        try:
            addr = int(parts[0], 16)
        except ValueError:
            raise ElfError(f"{path}: line {lineno}: bad address {parts[0]!r}") from None
        name = parts[2]
        if out.setdefault(name, addr) != addr:
            ambiguous.add(name)
    return out, frozenset(ambiguous)


def kallsyms_address(name: str, path: str = KALLSYMS) -> int | None:
    """The address of kernel symbol `name` in `path` (the running kernel's by default), None where it is not
    listed; `ElfError` where it is listed at two addresses (libbpf: "resolution is ambiguous")."""
    addresses, ambiguous = _addresses(path)
    if name in ambiguous:
        raise ElfError(f"extern (ksym) {name!r}: resolution is ambiguous ({path} lists it at two addresses)")
    return addresses.get(name)


__all__ = ["KALLSYMS", "kallsyms_address"]
