"""An object's ``__kconfig`` externs as libbpf fills them: the ``.kconfig`` map, for the running kernel.

An extern such as ``extern int CONFIG_HZ __kconfig;`` or ``extern bool LINUX_HAS_BPF_COOKIE
__kconfig __weak;`` has no storage in the object: libbpf lays every such extern out in one
read-only array map, ``.kconfig``, and fills it when the object is loaded (libbpf.c,
``bpf_object__collect_externs`` and ``bpf_object__resolve_externs``):

- layout: by alignment (largest first), then size (smallest first), then name, each at the
  next offset its alignment allows;
- ``CONFIG_*`` values from the kernel's configuration (``/proc/config.gz``, else
  ``/boot/config-<release>``): ``y``/``n``/``m`` for ``bool`` (``m`` refused), ``enum
  libbpf_tristate`` (yes 1, module 2) and ``char``; quoted strings for ``char[N]``; numbers for
  integers, which must fit.  An option the configuration does not set leaves a weak extern 0 and
  is an error for a strong one;
- the virtual ``LINUX_KERNEL_VERSION`` (``KERNEL_VERSION(a, b, c)`` of the release),
  ``LINUX_HAS_BPF_COOKIE`` and ``LINUX_HAS_SYSCALL_WRAPPER``; another ``LINUX_*`` is 0 when weak.

The verifier reads the map as constants (libbpf freezes it), so these values decide which code
is dead: the analysis gets them as the map's frozen contents.
"""

from __future__ import annotations

import gzip
import os
import platform
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from bpfpatch.btf.types import Btf, BtfKind
from bpfpatch.errors import ElfError
from bpfpatch.isa import STRUCT_ORDER, ByteOrder

#: The section (and BTF DATASEC) of ``__kconfig`` externs, and the map libbpf makes of it.
KCONFIG_SECTION = ".kconfig"
_BTF_INT_SIGNED, _BTF_INT_BOOL = 1, 4


@dataclass(frozen=True)
class KconfigExtern:
    """One ``__kconfig`` extern: where it lives in the ``.kconfig`` map and what it holds.

    `kind`: ``bool``, ``tristate``, ``char``, ``int`` or ``chars`` (a char array).
    """

    name: str
    offset: int
    size: int
    align: int
    kind: str
    signed: bool = False
    weak: bool = False


def _kind(btf: Btf, type_id: int) -> tuple[str, bool]:
    """(kind, signed) of an extern's type, as libbpf's ``find_kcfg_type`` classifies it."""
    t = btf.resolve(type_id)
    if t.kind == BtfKind.INT:
        enc = (t.extra[0] >> 24) & 0xF if t.extra else 0
        if enc & _BTF_INT_BOOL:
            return ("bool" if t.size_or_type == 1 else ""), False
        if t.size_or_type == 1:
            return "char", bool(enc & _BTF_INT_SIGNED)
        size = t.size_or_type
        return ("int" if size in (2, 4, 8) else ""), bool(enc & _BTF_INT_SIGNED)
    if t.kind in (BtfKind.ENUM, BtfKind.ENUM64) and t.name == "libbpf_tristate":
        return "tristate", False
    if t.kind == BtfKind.ARRAY and t.extra[2] and _kind(btf, t.extra[0])[0] == "char":
        return "chars", False
    return "", False


def _align(btf: Btf, type_id: int) -> int:
    t = btf.resolve(type_id)
    if t.kind == BtfKind.ARRAY:
        return _align(btf, t.extra[0])
    return min(max(t.size_or_type, 1), 8)


def kconfig_externs(btf: Btf | None, weak: frozenset[str] | set[str] = frozenset()) -> list[KconfigExtern]:
    """The object's ``__kconfig`` externs in libbpf's layout of the ``.kconfig`` map (none without BTF)."""
    sec = btf.datasec(KCONFIG_SECTION) if btf is not None else None
    if sec is None:
        return []
    found = []
    for var_id, _off, _size in sec.members:
        var = btf.type(var_id)
        kind, signed = _kind(btf, var.size_or_type)
        if not kind:
            raise ElfError(f"extern (kcfg) {var.name!r}: type is unsupported", section=KCONFIG_SECTION)
        found.append((var.name, btf.size_of(var.size_or_type), _align(btf, var.size_or_type), kind, signed))
    found.sort(key=lambda e: (-e[2], e[1], e[0]))
    out, off = [], 0
    for name, size, align, kind, signed in found:
        off = (off + align - 1) // align * align
        out.append(KconfigExtern(name, off, size, align, kind, signed, name in weak))
        off += size
    return out


@lru_cache(maxsize=4)
def kernel_config(path: str | None = None) -> dict[str, str] | None:
    """The running kernel's ``CONFIG_*`` settings (name -> value text), or None where none can be read."""
    candidates = [path] if path else ["/proc/config.gz", f"/boot/config-{os.uname().release}"]
    for p in candidates:
        try:
            raw = Path(p).read_bytes()
        except OSError:
            continue
        text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode(errors="replace")
        out = {}
        for line in text.splitlines():
            name, sep, value = line.partition("=")
            if line.startswith("CONFIG_") and sep and value:
                out[name] = value
        return out
    return None


def kernel_version(release: str | None = None) -> int:
    """``KERNEL_VERSION(major, minor, patch)`` of a release string (the running kernel's by default)."""
    parts = []
    for piece in (release or os.uname().release).split(".")[:3]:
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits or 0))
    major, minor, patch = (parts + [0, 0, 0])[:3]
    return (major << 16) + (minor << 8) + min(patch, 255)


def _has_syscall_wrapper() -> bool:
    """Whether syscalls go through arch wrappers (libbpf probes kallsyms for ``<arch prefix>sys_bpf``)."""
    prefix = {"x86_64": "__x64_", "aarch64": "__arm64_", "s390x": "__s390x_", "riscv64": "__riscv_"}.get(platform.machine())
    if prefix is None:
        return False
    try:
        with open("/proc/kallsyms") as f:
            return any(line.rstrip().endswith(" " + prefix + "sys_bpf") for line in f)
    except OSError:
        return True  # every such arch has had the wrappers since Linux 4.19


def _virtual(name: str) -> int | None:
    if name == "LINUX_KERNEL_VERSION":
        return kernel_version()
    if name == "LINUX_HAS_BPF_COOKIE":
        return int(kernel_version() >= (5 << 16) + (15 << 8))  # bpf_get_attach_cookie: Linux 5.15
    if name == "LINUX_HAS_SYSCALL_WRAPPER":
        return int(_has_syscall_wrapper())
    return None


def _set(data: bytearray, ext: KconfigExtern, value: str, byteorder: ByteOrder) -> None:
    """Write one configuration value (its text) into the extern's bytes, as libbpf does, or refuse it by name."""
    where = f"extern (kcfg) {ext.name!r}"
    if value[0] in "ynm":
        if ext.kind == "bool" and value[0] != "m":
            data[ext.offset] = value[0] == "y"
        elif ext.kind == "tristate":
            struct.pack_into(STRUCT_ORDER[byteorder] + "I", data, ext.offset, {"y": 1, "m": 2, "n": 0}[value[0]])
        elif ext.kind == "char":
            data[ext.offset] = ord(value[0])
        else:
            raise ElfError(f"{where}: value {value[0]!r} does not fit its type ({ext.kind})", section=KCONFIG_SECTION)
        return
    if value[0] == '"':
        if ext.kind != "chars" or len(value) < 2 or value[-1] != '"':
            raise ElfError(f"{where}: value {value} is not a string it can hold", section=KCONFIG_SECTION)
        text = value[1:-1].encode()[: ext.size - 1]
        data[ext.offset:ext.offset + len(text) + 1] = text + b"\0"
        return
    try:
        num = int(value, 0)
    except ValueError:
        raise ElfError(f"{where}: value {value!r} isn't a valid integer", section=KCONFIG_SECTION) from None
    _set_num(data, ext, num, where, byteorder)


def _set_num(data: bytearray, ext: KconfigExtern, num: int, where: str, byteorder: ByteOrder) -> None:
    if ext.kind not in ("int", "char", "bool") or (ext.kind == "bool" and not 0 <= num <= 1):
        raise ElfError(f"{where}: value {num} does not fit its type ({ext.kind})", section=KCONFIG_SECTION)
    bits = ext.size * 8
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if ext.signed else (0, (1 << bits) - 1)
    if not lo <= num <= hi and bits < 64:
        raise ElfError(f"{where}: value {num} doesn't fit in {ext.size} bytes", section=KCONFIG_SECTION)
    data[ext.offset:ext.offset + ext.size] = (num & ((1 << bits) - 1)).to_bytes(ext.size, byteorder)


def kconfig_data(externs: list[KconfigExtern], config: dict[str, str] | None = None,
                 byteorder: ByteOrder = "little") -> bytes:
    """The ``.kconfig`` map's contents for `externs` on the running kernel (`config`: its settings, read when
    not given), its numbers in the object's `byteorder`; `ElfError` naming the extern libbpf would refuse too."""
    size = max((e.offset + e.size for e in externs), default=0)
    data = bytearray(size)
    for ext in externs:
        if ext.name.startswith("LINUX_"):
            value = _virtual(ext.name)
            if value is None and not ext.weak:
                raise ElfError(f"extern (kcfg) {ext.name!r}: unrecognized virtual extern", section=KCONFIG_SECTION)
            _set_num(data, ext, value or 0, f"extern (kcfg) {ext.name!r}", byteorder)
            continue
        if not ext.name.startswith("CONFIG_"):
            if not ext.weak:
                raise ElfError(f"extern (kcfg) {ext.name!r}: only CONFIG_ and LINUX_ externs are known",
                               section=KCONFIG_SECTION)
            continue
        settings = config if config is not None else kernel_config()
        value = settings.get(ext.name) if settings is not None else None
        if value is None:
            if not ext.weak:
                why = "not set in the running kernel's configuration" if settings is not None else \
                    "no kernel configuration to read (/proc/config.gz, /boot/config-<release>)"
                raise ElfError(f"extern (kcfg) {ext.name!r} (strong): {why}", section=KCONFIG_SECTION)
            continue
        _set(data, ext, value, byteorder)
    return bytes(data)


__all__ = ["KCONFIG_SECTION", "KconfigExtern", "kconfig_data", "kconfig_externs", "kernel_config", "kernel_version"]
