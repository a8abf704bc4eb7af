"""The raw bpf(2) system call: command numbers, attribute layouts, errno mapping.

Only what bpfpatch uses: map create/update/lookup, program load, test run,
object info and BTF load.  Each command's attribute block is its own ctypes
structure laid out as in ``union bpf_attr`` (uapi/linux/bpf.h).
"""

from __future__ import annotations

import ctypes
import errno as E
import os
import platform
from enum import IntEnum

from bpfpatch.errors import KernelError, NotPrivilegedError

# bpf(2) system call numbers by machine.
_NR_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}

u32, u64, s32 = ctypes.c_uint32, ctypes.c_uint64, ctypes.c_int32


class Cmd(IntEnum):
    """bpf(2) commands used here."""

    MAP_CREATE = 0
    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    PROG_LOAD = 5
    PROG_TEST_RUN = 10
    OBJ_GET_INFO_BY_FD = 15
    BTF_LOAD = 18


class MapCreateAttr(ctypes.Structure):
    _fields_ = [
        ("map_type", u32), ("key_size", u32), ("value_size", u32), ("max_entries", u32),
        ("map_flags", u32), ("inner_map_fd", u32), ("numa_node", u32), ("map_name", ctypes.c_char * 16),
        ("map_ifindex", u32), ("btf_fd", u32), ("btf_key_type_id", u32), ("btf_value_type_id", u32),
    ]


class MapElemAttr(ctypes.Structure):
    _fields_ = [("map_fd", u32), ("_pad", u32), ("key", u64), ("value", u64), ("flags", u64)]


class ProgLoadAttr(ctypes.Structure):
    _fields_ = [
        ("prog_type", u32), ("insn_cnt", u32), ("insns", u64), ("license", u64),
        ("log_level", u32), ("log_size", u32), ("log_buf", u64), ("kern_version", u32),
        ("prog_flags", u32), ("prog_name", ctypes.c_char * 16), ("prog_ifindex", u32),
        ("expected_attach_type", u32), ("prog_btf_fd", u32), ("func_info_rec_size", u32),
        ("func_info", u64), ("func_info_cnt", u32), ("line_info_rec_size", u32), ("line_info", u64),
        ("line_info_cnt", u32), ("attach_btf_id", u32), ("attach_prog_fd", u32),
    ]


class TestRunAttr(ctypes.Structure):
    __test__ = False  # not a pytest class
    _fields_ = [
        ("prog_fd", u32), ("retval", u32), ("data_size_in", u32), ("data_size_out", u32),
        ("data_in", u64), ("data_out", u64), ("repeat", u32), ("duration", u32),
        ("ctx_size_in", u32), ("ctx_size_out", u32), ("ctx_in", u64), ("ctx_out", u64),
        ("flags", u32), ("cpu", u32), ("batch_size", u32),
    ]


class InfoAttr(ctypes.Structure):
    _fields_ = [("bpf_fd", u32), ("info_len", u32), ("info", u64)]


class BtfLoadAttr(ctypes.Structure):
    _fields_ = [("btf", u64), ("btf_log_buf", u64), ("btf_size", u32), ("btf_log_size", u32), ("btf_log_level", u32)]


class ProgInfo(ctypes.Structure):
    """struct bpf_prog_info, up to the fields bpfpatch reads."""

    _fields_ = [
        ("type", u32), ("id", u32), ("tag", ctypes.c_uint8 * 8), ("jited_prog_len", u32),
        ("xlated_prog_len", u32), ("jited_prog_insns", u64), ("xlated_prog_insns", u64),
        ("load_time", u64), ("created_by_uid", u32), ("nr_map_ids", u32), ("map_ids", u64),
        ("name", ctypes.c_char * 16), ("ifindex", u32), ("gpl_compatible", u32),
        ("netns_dev", u64), ("netns_ino", u64), ("nr_jited_ksyms", u32), ("nr_jited_func_lens", u32),
        ("jited_ksyms", u64), ("jited_func_lens", u64), ("btf_id", u32), ("func_info_rec_size", u32),
        ("func_info", u64), ("nr_func_info", u32), ("nr_line_info", u32), ("line_info", u64),
        ("jited_line_info", u64), ("nr_jited_line_info", u32), ("line_info_rec_size", u32),
        ("jited_line_info_rec_size", u32), ("nr_prog_tags", u32), ("prog_tags", u64),
        ("run_time_ns", u64), ("run_cnt", u64), ("recursion_misses", u64), ("verified_insns", u32),
        ("attach_btf_obj_id", u32), ("attach_btf_id", u32), ("_pad", u32),
    ]


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def addr(buf: ctypes.Array | ctypes.Structure | None) -> int:
    """A user pointer for an attribute field (0 for none)."""
    return ctypes.addressof(buf) if buf is not None else 0


def bpf(cmd: Cmd, attr: ctypes.Structure) -> int:
    """Call bpf(cmd, &attr, sizeof(attr)); return the result or raise OSError with errno."""
    nr = _NR_BPF.get(platform.machine())
    if nr is None:
        raise KernelError(f"bpf(): unsupported machine {platform.machine()}")
    ret = _syscall(ctypes.c_long(nr), ctypes.c_long(int(cmd)), ctypes.byref(attr), ctypes.c_long(ctypes.sizeof(attr)))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def raise_kernel_error(exc: OSError, what: str, log: str = "") -> None:
    """Map an errno from bpf() to bpfpatch's typed errors."""
    name = E.errorcode.get(exc.errno or 0, str(exc.errno))
    if exc.errno in (E.EPERM,) or (exc.errno == E.EACCES and not log):
        raise NotPrivilegedError(
            f"{what}: {name}: bpf() needs root or CAP_BPF (and CAP_NET_ADMIN/CAP_PERFMON for some program types)",
            errno=exc.errno,
        ) from exc
    raise KernelError(f"{what}: {name} ({exc.strerror})", errno=exc.errno, log=log) from exc


def close_fd(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


class FdOwner:
    """Owns one kernel object's fd and closes it once: `close()`, `with`, or, as a
    safety net, when garbage collected."""

    fd: int

    def close(self) -> None:
        if self.fd >= 0:
            close_fd(self.fd)
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
