"""Objects loaded the way users load them: a ctypes binding over libbpf.so.1.

libbpf does what it is made for -- it creates the object's maps (global data
``.data``/``.bss``/``.rodata`` included, ``.rodata`` frozen), sanitizes and
loads the BTF, applies CO-RE relocations, links subprograms and loads the
programs.  bpfpatch then reads and runs what libbpf made::

    >>> from bpfpatch.kernel.libbpf import load_object
    >>> with load_object("filter.o") as obj:
    ...     prog = obj.program("xdp_filter")          # by name or by section
    ...     prog.test_run(packet).retval
    ...     dict(obj.map("counters").items())         # key bytes -> value bytes

Why ctypes and not a Python package: Debian ships libbpf 1.1.2 as ``libbpf1``
(one shared library, no compiler needed); the PyPI bindings are either maps
only (bpfmaps 0.0.8, 2022), compile collections around BCC-style tooling
(pylcc, coolbpf) or a 0.0.x binding that builds C extensions against its own
libbpf (pylibbpf).  The stable libbpf 1.x C API we need is about thirty
functions; binding them here keeps the library that loads the objects the
distribution's own, the one users' loaders link against.

Errors: `LibbpfMissing` when the shared library cannot be found,
`LibbpfError` (with libbpf's own log, captured through ``libbpf_set_print``)
when libbpf refuses to open or load the object; a verifier refusal is a
`LibbpfError` whose `log` holds the verifier's output.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno as E
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from bpfpatch.errors import BpfPatchError, KernelError
from bpfpatch.kernel.bpf_sys import FdOwner
from bpfpatch.kernel.loader import LoadedProgram, TestRunResult
from bpfpatch.kernel.maps import MapType
from bpfpatch.progtype import ProgType, prog_type_of, untyped_section

LIBBPF_SONAME = "libbpf.so.1"
BPF_F_SLEEPABLE = 1 << 4

# Map types whose values are one slot per possible CPU (the syscall reads all of them at once).
PERCPU_MAP_TYPES = frozenset({MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH,
                              MapType.PERCPU_CGROUP_STORAGE})
# Map types whose contents can be listed with get_next_key + lookup.
KEYED_MAP_TYPES = frozenset({MapType.HASH, MapType.ARRAY, MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_HASH,
                             MapType.LRU_PERCPU_HASH, MapType.LPM_TRIE, MapType.ARRAY_OF_MAPS})
# Map types without keys whose contents are listed by popping every element and pushing them back
# (BPF_MAP_LOOKUP_AND_DELETE_ELEM, then BPF_MAP_UPDATE_ELEM in the order that restores them).
POPPED_MAP_TYPES = frozenset({MapType.QUEUE, MapType.STACK})
# Map types `ObjectMap.dump` lists (a bloom filter's members cannot be listed: it is not among them).
LISTABLE_MAP_TYPES = KEYED_MAP_TYPES | POPPED_MAP_TYPES


class LibbpfError(KernelError):
    """libbpf refused to open or load an object (its log in `log`)."""


class LibbpfMissing(LibbpfError):
    """libbpf.so.1 is not installed (Debian: ``apt-get install libbpf1``)."""


class MissingProgType(LibbpfError):
    """A program to load whose section name gives no program type, libbpf's or bpfpatch's (and none was given)."""


class ObjectOpenOpts(ctypes.Structure):
    """struct bpf_object_open_opts (libbpf 1.1)."""

    _fields_ = [
        ("sz", ctypes.c_size_t), ("object_name", ctypes.c_char_p), ("relaxed_maps", ctypes.c_bool),
        ("pin_root_path", ctypes.c_char_p), ("_attach_prog_fd", ctypes.c_uint32),
        ("kconfig", ctypes.c_char_p), ("btf_custom_path", ctypes.c_char_p),
        ("kernel_log_buf", ctypes.c_char_p), ("kernel_log_size", ctypes.c_size_t),
        ("kernel_log_level", ctypes.c_uint32),
    ]


# libbpf_print_fn_t: int (*)(enum libbpf_print_level, const char *fmt, va_list ap).
# On x86-64 (and every ABI where va_list is an array type) the va_list arrives as a pointer,
# which vsnprintf takes as it is.
PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)

_lib: ctypes.CDLL | None = None
_lib_lock = threading.Lock()
_log = threading.local()
_libc = ctypes.CDLL(None)
_vsnprintf = _libc.vsnprintf
_vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
_vsnprintf.restype = ctypes.c_int


def _print(level: int, fmt: bytes, args: int) -> int:
    buf = ctypes.create_string_buffer(4096)
    _vsnprintf(buf, len(buf), fmt, args)
    lines = getattr(_log, "lines", None)
    if lines is not None:
        lines.append(buf.value.decode(errors="replace"))
    return 0


_PRINT = PRINT_FN(_print)  # kept alive for the life of the process

_P, _I, _U32, _SZ = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_size_t
_SIGNATURES = {
    "libbpf_set_print": (_P, [PRINT_FN]),
    "bpf_object__open_file": (_P, [ctypes.c_char_p, _P]),
    "bpf_object__open_mem": (_P, [_P, _SZ, _P]),
    "bpf_object__load": (_I, [_P]),
    "bpf_object__close": (None, [_P]),
    "bpf_object__btf_fd": (_I, [_P]),
    "bpf_object__next_program": (_P, [_P, _P]),
    "bpf_object__next_map": (_P, [_P, _P]),
    "bpf_program__name": (ctypes.c_char_p, [_P]),
    "bpf_program__section_name": (ctypes.c_char_p, [_P]),
    "bpf_program__set_autoload": (_I, [_P, ctypes.c_bool]),
    "bpf_program__autoload": (ctypes.c_bool, [_P]),
    "bpf_program__set_type": (_I, [_P, _I]),
    "bpf_program__type": (_I, [_P]),
    "bpf_program__expected_attach_type": (_I, [_P]),
    "bpf_program__set_expected_attach_type": (_I, [_P, _I]),
    "bpf_program__flags": (_U32, [_P]),
    "bpf_program__set_flags": (_I, [_P, _U32]),
    "bpf_program__set_log_level": (_I, [_P, _U32]),
    "bpf_program__fd": (_I, [_P]),
    "bpf_program__insns": (_P, [_P]),
    "bpf_program__insn_cnt": (_SZ, [_P]),
    "bpf_map__name": (ctypes.c_char_p, [_P]),
    "bpf_map__fd": (_I, [_P]),
    "bpf_map__type": (_I, [_P]),
    "bpf_map__key_size": (_U32, [_P]),
    "bpf_map__value_size": (_U32, [_P]),
    "bpf_map__max_entries": (_U32, [_P]),
    "bpf_map__map_flags": (_U32, [_P]),
    "bpf_map__is_internal": (ctypes.c_bool, [_P]),
    "bpf_map__initial_value": (_P, [_P, ctypes.POINTER(_SZ)]),
    "bpf_map__set_autocreate": (_I, [_P, ctypes.c_bool]),
    "bpf_map__set_pin_path": (_I, [_P, ctypes.c_char_p]),
    "bpf_map_lookup_elem": (_I, [_I, _P, _P]),
    "bpf_map_update_elem": (_I, [_I, _P, _P, ctypes.c_uint64]),
    "bpf_map_delete_elem": (_I, [_I, _P]),
    "bpf_map_get_next_key": (_I, [_I, _P, _P]),
    "bpf_map_lookup_and_delete_elem": (_I, [_I, _P, _P]),
    "bpf_map_lookup_batch": (_I, [_I, _P, _P, _P, _P, ctypes.POINTER(_U32), _P]),
    "libbpf_num_possible_cpus": (_I, []),
}


def _text(name: bytes) -> str:
    """A name libbpf read from the object: any bytes (a damaged string table), shown escaped."""
    return name.decode("utf-8", "backslashreplace")


def libbpf() -> ctypes.CDLL:
    """The loaded libbpf.so.1 with its functions typed; `LibbpfMissing` when absent."""
    global _lib
    with _lib_lock:
        if _lib is None:
            name = LIBBPF_SONAME
            try:
                lib = ctypes.CDLL(name, use_errno=True)
            except OSError:
                found = ctypes.util.find_library("bpf")
                if not found:
                    raise LibbpfMissing(f"{name} not found: install libbpf (Debian: apt-get install libbpf1)") from None
                try:
                    lib = ctypes.CDLL(found, use_errno=True)
                except OSError as exc:
                    raise LibbpfMissing(f"{found}: {exc}") from exc
            for fn, (res, args) in _SIGNATURES.items():
                try:
                    f = getattr(lib, fn)
                except AttributeError:
                    raise LibbpfMissing(f"{name} has no {fn}(): libbpf 1.0 or later is needed") from None
                f.restype, f.argtypes = res, args
            lib.libbpf_set_print(_PRINT)
            _lib = lib
        return _lib


def libbpf_available() -> tuple[bool, str]:
    """(True, "") where libbpf.so.1 loads, else (False, why)."""
    try:
        libbpf()
    except LibbpfMissing as exc:
        return False, str(exc)
    return True, ""


def num_possible_cpus() -> int:
    """libbpf's count of possible CPUs: the number of slots of a per-CPU map value."""
    n = libbpf().libbpf_num_possible_cpus()
    if n <= 0:
        raise LibbpfError(f"libbpf_num_possible_cpus: {os.strerror(-n)}", errno=-n)
    return n


class _Capture:
    """Collect libbpf's print output (this thread) while a call runs."""

    def __enter__(self) -> list[str]:
        self.prev = getattr(_log, "lines", None)
        _log.lines = []
        return _log.lines

    def __exit__(self, *exc: object) -> None:
        _log.lines = self.prev


def verifier_lines(log: str) -> list[str]:
    """The verifier's own lines inside libbpf's log (between its BEGIN/END PROG LOAD LOG marks)."""
    out: list[str] = []
    inside = False
    for line in log.splitlines():
        if "-- BEGIN PROG LOAD LOG --" in line:
            inside, out = True, []
        elif "-- END PROG LOAD LOG --" in line:
            inside = False
        elif inside:
            out.append(line)
    return out


def verifier_reason(log: str) -> str:
    """The line that says why the verifier refused (the last one before its statistics)."""
    rows = [r.strip() for r in verifier_lines(log) if r.strip()]
    rows = [r for r in rows if not r.startswith(("processed ", "verification time", "stack depth"))]
    return rows[-1] if rows else ""


def _fail(what: str, err: int, lines: list[str]) -> LibbpfError:
    text = "".join(lines)
    why = f"{what}: {E.errorcode.get(err, err)} ({os.strerror(err)})"
    reason = verifier_reason(text)
    if not reason:
        tail = [r.strip() for r in text.splitlines() if r.strip() and "failed to load object" not in r]
        reason = tail[-1] if tail else ""
    if reason:
        why += ": " + reason
    return LibbpfError(why, errno=err, log=text)


@dataclass(frozen=True)
class MapInfo:
    """What a map of a loaded object is."""

    name: str
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    internal: bool  # .data / .bss / .rodata / .kconfig, created by libbpf from sections

    @property
    def percpu(self) -> bool:
        """Values are one slot per possible CPU."""
        return self.map_type in PERCPU_MAP_TYPES

    @property
    def type_name(self) -> str:
        try:
            return MapType(self.map_type).name.lower()
        except ValueError:
            return str(self.map_type)


class ObjectMap:
    """One map of a loaded object; its fd belongs to the object (closed with it)."""

    def __init__(self, obj: "LoadedObject", handle: int) -> None:
        lib = libbpf()
        self._obj = obj
        self._handle = handle
        self.info = MapInfo(
            name=_text(lib.bpf_map__name(handle)), map_type=lib.bpf_map__type(handle),
            key_size=lib.bpf_map__key_size(handle), value_size=lib.bpf_map__value_size(handle),
            max_entries=lib.bpf_map__max_entries(handle), flags=lib.bpf_map__map_flags(handle),
            internal=bool(lib.bpf_map__is_internal(handle)),
        )
        self._ncpu = num_possible_cpus() if self.info.percpu else 1
        self._stride = (self.info.value_size + 7) // 8 * 8 if self.info.percpu else self.info.value_size
        self._key = ctypes.create_string_buffer(max(self.info.key_size, 1))
        self._next = ctypes.create_string_buffer(max(self.info.key_size, 1))
        self._val = ctypes.create_string_buffer(max(self._stride * self._ncpu, 1))
        self._batch: bool | None = None  # does BPF_MAP_LOOKUP_BATCH work on it (None: not tried)
        self._bufs: tuple | None = None

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def fd(self) -> int:
        """The map's fd (owned by the object)."""
        return libbpf().bpf_map__fd(self._handle)

    @property
    def value_bytes(self) -> int:
        """Bytes one lookup returns: value_size, or one 8-byte-aligned slot per CPU for per-CPU maps."""
        return self._stride * self._ncpu

    @property
    def listable(self) -> bool:
        """Its entries can be listed (hash- and array-like maps, queues and stacks)."""
        return self.info.map_type in LISTABLE_MAP_TYPES

    @property
    def entry_key_size(self) -> int:
        """Bytes of one key in `dump`: key_size, or 4 for a queue or stack (the position in pop order)."""
        return 4 if self.info.map_type in POPPED_MAP_TYPES else self.info.key_size

    def popped(self) -> list[bytes]:
        """A queue's or stack's elements in pop order, left in the map as they were."""
        lib = libbpf()
        fd = self.fd
        out = []
        while len(out) <= self.info.max_entries:
            if lib.bpf_map_lookup_and_delete_elem(fd, None, self._val) != 0:
                err = ctypes.get_errno()
                if err == E.ENOENT:
                    break
                raise LibbpfError(f"map {self.name}: lookup_and_delete: {os.strerror(err)}", errno=err)
            out.append(self._val.raw[: self.info.value_size])
        # a queue pops in push order (push them back as popped), a stack pops the last pushed first
        for v in (out if self.info.map_type == MapType.QUEUE else reversed(out)):
            if lib.bpf_map_update_elem(fd, None, ctypes.create_string_buffer(v, max(len(v), 1)), 0) != 0:
                err = ctypes.get_errno()
                raise LibbpfError(f"map {self.name}: push back: {os.strerror(err)}", errno=err)
        return out

    def initial_value(self) -> bytes | None:
        """The section contents libbpf initialized a global-data map with (None otherwise)."""
        size = ctypes.c_size_t(0)
        ptr = libbpf().bpf_map__initial_value(self._handle, ctypes.byref(size))
        return ctypes.string_at(ptr, size.value) if ptr else None

    def lookup(self, key: bytes) -> bytes | None:
        """The value under `key` (all CPUs' slots for a per-CPU map), None if absent."""
        self._key.raw = key.ljust(len(self._key.raw), b"\0")[: len(self._key.raw)]
        if libbpf().bpf_map_lookup_elem(self.fd, self._key, self._val) != 0:
            err = ctypes.get_errno()
            if err == E.ENOENT:
                return None
            raise LibbpfError(f"map {self.name}: lookup: {os.strerror(err)}", errno=err)
        return self._val.raw[: self.value_bytes]

    def update(self, key: bytes, value: bytes, flags: int = 0) -> None:
        """Write `value` under `key` (per-CPU maps: one slot per CPU, or one value copied to all; a queue or
        stack: push `value`, `key` is empty)."""
        if self.info.percpu and len(value) == self.info.value_size:
            value = value.ljust(self._stride, b"\0") * self._ncpu
        k = ctypes.create_string_buffer(key, max(len(key), 1)) if self.info.key_size else None  # a queue's push: no key
        v = ctypes.create_string_buffer(value, max(len(value), 1))
        if libbpf().bpf_map_update_elem(self.fd, k, v, flags) != 0:
            err = ctypes.get_errno()
            raise LibbpfError(f"map {self.name}: update: {os.strerror(err)}", errno=err)

    def delete(self, key: bytes) -> bool:
        """Delete `key`; False when it was absent."""
        k = ctypes.create_string_buffer(key, max(len(key), 1))
        if libbpf().bpf_map_delete_elem(self.fd, k) != 0:
            err = ctypes.get_errno()
            if err == E.ENOENT:
                return False
            raise LibbpfError(f"map {self.name}: delete: {os.strerror(err)}", errno=err)
        return True

    def keys(self) -> Iterator[bytes]:
        """Every key, in the kernel's iteration order."""
        lib = libbpf()
        fd = self.fd
        ks = len(self._key.raw)
        prev = None
        while True:
            if lib.bpf_map_get_next_key(fd, prev, self._next) != 0:
                err = ctypes.get_errno()
                if err == E.ENOENT:
                    return
                raise LibbpfError(f"map {self.name}: get_next_key: {os.strerror(err)}", errno=err)
            k = self._next.raw[:ks]
            yield k
            self._key.raw = k
            prev = self._key

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) for every entry (per-CPU values: all slots, see `per_cpu`)."""
        for k in list(self.keys()):
            v = self.lookup(k)
            if v is not None:
                yield k, v

    def dump(self) -> tuple[bytes, bytes, int]:
        """All entries at once: (keys, values, count), keys and values packed back to back in
        the kernel's order (BPF_MAP_LOOKUP_BATCH; entry by entry where the map has no batch
        lookup; a queue or stack: its elements in pop order, keyed by position, see `entry_key_size`).
        Values are `value_bytes` long each."""
        if self.info.map_type in POPPED_MAP_TYPES:
            vals = self.popped()
            return b"".join(i.to_bytes(4, "little") for i in range(len(vals))), b"".join(vals), len(vals)
        n = max(self.info.max_entries, 1)
        if self._batch is not False:
            if self._bufs is None:
                self._bufs = (ctypes.create_string_buffer(self.info.key_size * n),
                              ctypes.create_string_buffer(self.value_bytes * n),
                              ctypes.create_string_buffer(max(self.info.key_size, 8)))
            keys, vals, token = self._bufs
            count = ctypes.c_uint32(n)
            rc = libbpf().bpf_map_lookup_batch(self.fd, None, token, keys, vals, ctypes.byref(count), None)
            err = ctypes.get_errno() if rc != 0 else 0
            if rc == 0 or err == E.ENOENT:  # ENOENT: the batch reached the end of the map
                self._batch = True
                c = count.value
                return keys.raw[: c * self.info.key_size], vals.raw[: c * self.value_bytes], c
            if self._batch is True or err not in (E.EINVAL, E.ENOTSUP, E.EOPNOTSUPP, 524):  # 524: ENOTSUPP
                raise LibbpfError(f"map {self.name}: lookup_batch: {os.strerror(err)}", errno=err)
            self._batch = False
        rows = list(self.items())
        return b"".join(k for k, _ in rows), b"".join(v for _, v in rows), len(rows)

    def per_cpu(self, value: bytes) -> list[bytes]:
        """A per-CPU lookup result split into its CPUs' values."""
        if not self.info.percpu:
            return [value]
        return [value[i * self._stride: i * self._stride + self.info.value_size] for i in range(self._ncpu)]

    def __repr__(self) -> str:
        i = self.info
        return f"<ObjectMap {i.name} {i.type_name} key {i.key_size} value {i.value_size} x{i.max_entries}>"


class ObjectProgram:
    """One program of a loaded object; its fd belongs to the object."""

    def __init__(self, obj: "LoadedObject", handle: int) -> None:
        lib = libbpf()
        self._obj = obj
        self._handle = handle
        self.name: str = _text(lib.bpf_program__name(handle))
        self.section: str = _text(lib.bpf_program__section_name(handle))
        self.optional = False  # SEC("?..."): libbpf does not load it unless asked (set by LoadedObject)

    @property
    def elf_section(self) -> str:
        """The section name as the ELF object writes it (libbpf's `section` lacks a leading ``?``)."""
        return "?" + self.section if self.optional else self.section

    @property
    def fd(self) -> int:
        """The program's fd (-1 when it was not loaded)."""
        return libbpf().bpf_program__fd(self._handle)

    @property
    def loaded(self) -> bool:
        return self.fd >= 0

    @property
    def prog_type(self) -> ProgType:
        return prog_type_of(libbpf().bpf_program__type(self._handle))

    @property
    def expected_attach_type(self) -> int:
        return libbpf().bpf_program__expected_attach_type(self._handle)

    @property
    def flags(self) -> int:
        return libbpf().bpf_program__flags(self._handle)

    def insns(self) -> bytes:
        """The instructions as libbpf loaded them: CO-RE applied, subprograms appended,
        map fds in the ld_imm64s of this object's maps."""
        lib = libbpf()
        n = lib.bpf_program__insn_cnt(self._handle)
        ptr = lib.bpf_program__insns(self._handle)
        return ctypes.string_at(ptr, n * 8) if ptr and n else b""

    def as_loaded(self) -> LoadedProgram:
        """A `LoadedProgram` view on the fd (xlated, test_run); the object keeps owning the fd."""
        return _Borrowed(self.fd, self.prog_type, "")

    def test_run(self, data_in: bytes = b"", ctx_in: bytes | None = None, **kw) -> TestRunResult:
        """BPF_PROG_TEST_RUN on this program (see `LoadedProgram.test_run`)."""
        if not self.loaded:
            raise LibbpfError(f"program {self.name} was not loaded")
        return self.as_loaded().test_run(data_in, ctx_in, **kw)

    def __repr__(self) -> str:
        return f"<ObjectProgram {self.name} section {self.section} fd {self.fd}>"


class _Borrowed(LoadedProgram):
    """A LoadedProgram over an fd someone else closes."""

    def close(self) -> None:
        self.fd = -1


class LoadedObject(FdOwner):
    """An ELF object libbpf opened and loaded: its programs and maps.

    Everything is closed at once, deterministically, by `close()` or the end of a
    ``with`` block (programs, maps, BTF: libbpf's bpf_object__close)."""

    def __init__(self, handle: int, name: str, keep: object = None, optional: set[str] | None = None) -> None:
        self._handle: int | None = handle
        self.fd = -1  # FdOwner protocol: the object owns no fd of its own
        self.name = name
        self._keep = keep  # the object bytes libbpf reads from (open_mem does not copy them)
        lib = libbpf()
        self.programs: dict[str, ObjectProgram] = {}
        p = lib.bpf_object__next_program(handle, None)
        while p:
            prog = ObjectProgram(self, p)
            prog.optional = prog.name in (optional or ())
            self.programs[prog.name] = prog
            p = lib.bpf_object__next_program(handle, p)
        self.maps: dict[str, ObjectMap] = {}
        m = lib.bpf_object__next_map(handle, None)
        while m:
            om = ObjectMap(self, m)
            self.maps[om.name] = om
            m = lib.bpf_object__next_map(handle, m)

    @property
    def btf_fd(self) -> int:
        """The fd of the object's BTF as libbpf loaded it (-1 without BTF)."""
        return libbpf().bpf_object__btf_fd(self._handle) if self._handle else -1

    def program(self, which: str | None = None) -> ObjectProgram:
        """A program by name, by ``section:name``, or by section name (exact, then prefix); the
        only one if None."""
        loaded = [p for p in self.programs.values() if p.loaded] or list(self.programs.values())
        if which is None:
            if len(loaded) == 1:
                return loaded[0]
            raise LibbpfError(f"{self.name}: {len(loaded)} programs ({', '.join(p.name for p in loaded)}): name one")
        if which in self.programs:
            return self.programs[which]
        sec, _, fn = which.rpartition(":")
        if sec and fn in self.programs and sec in (self.programs[fn].section, self.programs[fn].elf_section):
            return self.programs[fn]  # bpfpatch's own "section:function" naming
        # the section as the ELF writes it first ("tc" is not "?tc"), then as libbpf names it, then a prefix
        for match in (lambda p: p.elf_section == which, lambda p: p.section == which,
                      lambda p: p.section.startswith(which)):
            hits = [p for p in self.programs.values() if match(p)]
            if len(hits) == 1:
                return hits[0]
            if hits:
                raise LibbpfError(f"{self.name}: section {which!r} holds {', '.join(p.name for p in hits)}: name one")
        raise LibbpfError(f"{self.name}: no program or section {which!r} "
                          f"(programs: {', '.join(f'{p.name} [{p.section}]' for p in self.programs.values())})")

    def map(self, name: str) -> ObjectMap:
        """A map by name (global data maps are named like ``<object>.rodata``; the suffix is enough)."""
        if name in self.maps:
            return self.maps[name]
        hits = [m for n, m in self.maps.items() if n.endswith(name)]
        if len(hits) == 1:
            return hits[0]
        raise LibbpfError(f"{self.name}: no map {name!r} (maps: {', '.join(self.maps)})")

    def map_by_fd(self, fd: int) -> ObjectMap | None:
        """The object's map with this fd (the fds libbpf wrote into the instructions)."""
        for m in self.maps.values():
            if m.fd == fd:
                return m
        return None

    def load_insns(self, insns: bytes, like: ObjectProgram | str, *, log_level: int = 0,
                   fd_map: dict[int, int] | None = None) -> LoadedProgram:
        """Load other instructions as a program of the same type as `like`, against this
        object's maps: ld_imm64 map fds are this object's (or `fd_map` translates them).

        For rewrites of what libbpf loaded (`ObjectProgram.insns`): instrumented copies,
        bytecode mutants, passes applied after relocation."""
        from bpfpatch.kernel.loader import load_program

        prog = self.program(like) if isinstance(like, str) else like
        raw = remap_map_fds(insns, fd_map) if fd_map else insns
        flags = prog.flags
        if prog.prog_type is ProgType.SYSCALL or prog.section.endswith(".s") or ".s/" in prog.section:
            flags |= BPF_F_SLEEPABLE  # libbpf adds it at load time from the section, not to the program's flags
        return load_program(raw, prog.prog_type, expected_attach_type=prog.expected_attach_type,
                            prog_flags=flags, log_level=log_level, name=prog.name[:15])

    def close(self) -> None:
        if self._handle:
            libbpf().bpf_object__close(self._handle)
            self._handle = None
            self._keep = None

    def __del__(self) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<LoadedObject {self.name}: programs {list(self.programs)}, maps {list(self.maps)}>"


def remap_map_fds(insns: bytes, fd_map: dict[int, int]) -> bytes:
    """Rewrite the fds of map-referencing ld_imm64s (src 1 MAP_FD, 2 MAP_VALUE) through `fd_map`."""
    out = bytearray(insns)
    i = 0
    n = len(out) // 8
    while i < n:
        code = out[8 * i]
        if code == 0x18:
            src = out[8 * i + 1] >> 4
            if src in (1, 2):
                fd = int.from_bytes(out[8 * i + 4: 8 * i + 8], "little", signed=True)
                if fd in fd_map:
                    out[8 * i + 4: 8 * i + 8] = int(fd_map[fd]).to_bytes(4, "little", signed=True)
            i += 2
        else:
            i += 1
    return bytes(out)


def load_object(
    source: "str | os.PathLike[str] | bytes",
    *,
    prog_type: "ProgType | int | str | None" = None,
    programs: "list[str] | None" = None,
    expected_attach_type: int | None = None,
    log_level: int = 0,
    name: str | None = None,
    pin_maps: bool = False,
) -> LoadedObject:
    """Open and load an ELF object through libbpf; return its programs and maps.

    `source`: a path, or the object's bytes (bpf_object__open_mem).  `prog_type`
    overrides the type libbpf infers from each section name (needed for sections
    libbpf does not know).  `programs`: load only these (names or sections); the
    others are not loaded.  `log_level` is passed to every program load (the
    verifier log then arrives in libbpf's log).  `pin_maps`: honour the maps' pinning
    attributes (LIBBPF_PIN_BY_NAME reuses maps pinned under /sys/fs/bpf, shared with every
    other load); by default every load gets maps of its own.  A refusal raises `LibbpfError`
    with libbpf's log (the verifier's lines included).
    """
    lib = libbpf()
    opts = ObjectOpenOpts(sz=ctypes.sizeof(ObjectOpenOpts))
    keep = None
    with _Capture() as lines:
        if isinstance(source, (bytes, bytearray, memoryview)):
            label = name or "object in memory"
            keep = ctypes.create_string_buffer(bytes(source), len(source))
            opts.object_name = label.encode()
            handle = lib.bpf_object__open_mem(keep, len(source), ctypes.byref(opts))
        else:
            path = Path(source)
            label = name or str(path)
            if not path.is_file():
                raise LibbpfError(f"{path}: no such file", errno=E.ENOENT)
            handle = lib.bpf_object__open_file(os.fsencode(path), ctypes.byref(opts))
        if not handle:
            raise _fail(f"{label}: libbpf cannot open the object", ctypes.get_errno(), lines)
        try:
            obj_progs = []
            p = lib.bpf_object__next_program(handle, None)
            while p:
                obj_progs.append(p)
                p = lib.bpf_object__next_program(handle, p)
            chosen = None
            if programs is not None:
                chosen = set(programs)
            optional: set[str] = set()
            for p in obj_progs:
                pname = _text(lib.bpf_program__name(p))
                psec = _text(lib.bpf_program__section_name(p))
                if not lib.bpf_program__autoload(p):  # as opened: SEC("?...") (libbpf drops the "?" from the name)
                    optional.add(pname)
                if chosen is not None:
                    lib.bpf_program__set_autoload(p, bool(chosen & spellings(pname, psec, pname in optional)))
                if prog_type is not None:
                    lib.bpf_program__set_type(p, int(prog_type_of(prog_type)))
                elif lib.bpf_program__type(p) == ProgType.UNSPEC:
                    # A section libbpf does not know ("socket/two"): bpfpatch's prefix table decides; a name it
                    # does not know either (suricata's "filter") is refused before libbpf's bare EINVAL
                    try:
                        lib.bpf_program__set_type(p, int(prog_type_of(psec)))
                    except BpfPatchError:
                        if chosen is None or pname in chosen or psec in chosen:
                            raise MissingProgType(f"{label}: program {pname!r}: {untyped_section(psec)}",
                                                  errno=E.EINVAL) from None
                if expected_attach_type is not None:
                    lib.bpf_program__set_expected_attach_type(p, expected_attach_type)
                if log_level:
                    lib.bpf_program__set_log_level(p, log_level)
            if not pin_maps:
                m = lib.bpf_object__next_map(handle, None)
                while m:
                    lib.bpf_map__set_pin_path(m, None)
                    m = lib.bpf_object__next_map(handle, m)
            rc = lib.bpf_object__load(handle)
            if rc != 0:
                raise _fail(f"{label}: libbpf cannot load the object", -rc if rc < 0 else ctypes.get_errno(), lines)
        except BaseException:
            lib.bpf_object__close(handle)
            raise
    obj = LoadedObject(handle, label, keep, optional)
    obj.log = "".join(lines)
    return obj


def spellings(name: str, section: str, optional: bool = False) -> set[str]:
    """The ways a caller can name one program of an object: its function name, libbpf's section
    name, the section as written in the ELF (``?tc`` for ``SEC("?tc")``: bpfpatch's disasm, patch and
    analyze print and take it so), and bpfpatch's ``section:function`` with either section."""
    written = "?" + section if optional else section
    return {name, section, written, f"{section}:{name}", f"{written}:{name}"}


__all__ = [
    "LIBBPF_SONAME", "LibbpfError", "LibbpfMissing", "MissingProgType", "LoadedObject", "MapInfo", "ObjectMap", "ObjectProgram",
    "libbpf", "libbpf_available", "load_object", "num_possible_cpus", "remap_map_fds", "spellings",
    "verifier_lines", "verifier_reason",
]
