"""Load programs, read what the kernel made of them, run them: the kernel as oracle."""

from __future__ import annotations

import ctypes
import errno as E
from dataclasses import dataclass
from typing import Protocol

from bpfpatch.errors import KernelError, VerifierError
from bpfpatch.progtype import PACKET_RUNNABLE, SECTION_TYPES, ProgType, prog_type_of  # noqa: F401 (re-exported)
from bpfpatch.kernel.bpf_sys import (
    Cmd,
    FdOwner,
    InfoAttr,
    ProgInfo,
    ProgLoadAttr,
    TestRunAttr,
    addr,
    bpf,
    raise_kernel_error,
)


class HasBytes(Protocol):
    def to_bytes(self) -> bytes: ...


@dataclass(frozen=True)
class TestRunResult:
    """What BPF_PROG_TEST_RUN returned."""

    __test__ = False
    retval: int
    data_out: bytes
    ctx_out: bytes | None
    duration_ns: int


class LoadedProgram(FdOwner):
    """A program the kernel accepted; closes its fd when done (context manager)."""

    def __init__(self, fd: int, prog_type: ProgType, log: str) -> None:
        self.fd = fd
        self.prog_type = prog_type
        self.verifier_log = log

    def info(self, xlated: int = 0) -> tuple[ProgInfo, ctypes.Array | None]:
        info = ProgInfo()
        buf = None
        if xlated:
            buf = (ctypes.c_uint8 * xlated)()
            info.xlated_prog_len = xlated
            info.xlated_prog_insns = addr(buf)
        attr = InfoAttr(bpf_fd=self.fd, info_len=ctypes.sizeof(info), info=addr(info))
        try:
            bpf(Cmd.OBJ_GET_INFO_BY_FD, attr)
        except OSError as exc:
            raise_kernel_error(exc, "BPF_OBJ_GET_INFO_BY_FD")
        return info, buf

    def xlated(self) -> bytes:
        """The instructions the kernel keeps after its own rewrites (raw bytes)."""
        info, _ = self.info()
        n = info.xlated_prog_len
        if not n:
            return b""
        _, buf = self.info(xlated=n)
        return bytes(buf)

    @property
    def verified_insns(self) -> int:
        return int(self.info()[0].verified_insns)

    def test_run(
        self,
        data_in: bytes = b"",
        ctx_in: bytes | None = None,
        *,
        repeat: int = 1,
        data_size_out: int | None = None,
        ctx_size_out: int | None = None,
    ) -> TestRunResult:
        """Run the program once (or `repeat` times) on `data_in` / `ctx_in`."""
        din = ctypes.create_string_buffer(data_in, len(data_in)) if data_in else None
        out_size = data_size_out if data_size_out is not None else max(len(data_in) + 256, 256)
        dout = ctypes.create_string_buffer(out_size)
        cin = ctypes.create_string_buffer(ctx_in, len(ctx_in)) if ctx_in else None
        csize = ctx_size_out if ctx_size_out is not None else (len(ctx_in) if ctx_in else 0)
        cout = ctypes.create_string_buffer(csize) if csize else None
        attr = TestRunAttr(
            prog_fd=self.fd, data_size_in=len(data_in), data_size_out=out_size, data_in=addr(din),
            data_out=addr(dout), repeat=repeat, ctx_size_in=len(ctx_in) if ctx_in else 0,
            ctx_size_out=csize, ctx_in=addr(cin), ctx_out=addr(cout),
        )
        try:
            bpf(Cmd.PROG_TEST_RUN, attr)
        except OSError as exc:
            raise_kernel_error(exc, f"BPF_PROG_TEST_RUN ({self.prog_type.name.lower()})")
        data_out = dout.raw[: min(attr.data_size_out, out_size)]
        ctx_out = cout.raw[: attr.ctx_size_out] if cout is not None else None
        return TestRunResult(int(attr.retval), data_out, ctx_out, int(attr.duration))


def load_program(
    insns: "bytes | HasBytes",
    prog_type: "ProgType | int | str" = ProgType.SOCKET_FILTER,
    *,
    license: str = "GPL",
    expected_attach_type: int = 0,
    prog_flags: int = 0,
    prog_btf_fd: int | None = None,
    func_info: bytes | None = None,
    func_info_rec_size: int = 8,
    line_info: bytes | None = None,
    line_info_rec_size: int = 16,
    log_level: int = 0,
    log_size: int = 1 << 20,
    name: str = "",
    attach_btf_id: int = 0,
) -> LoadedProgram:
    """BPF_PROG_LOAD; raise `VerifierError` (with the log) when the verifier says no.

    ``attach_btf_id`` names the attach target in the kernel's BTF (tracing, LSM, struct_ops programs)."""
    raw = insns if isinstance(insns, (bytes, bytearray)) else insns.to_bytes()
    ptype = prog_type_of(prog_type)
    code = ctypes.create_string_buffer(bytes(raw), len(raw))
    lic = ctypes.create_string_buffer(license.encode())
    fi = ctypes.create_string_buffer(func_info, len(func_info)) if func_info else None
    li = ctypes.create_string_buffer(line_info, len(line_info)) if line_info else None

    def attempt(level: int, size: int) -> tuple[int, str]:
        log = ctypes.create_string_buffer(size) if level else None
        attr = ProgLoadAttr(
            prog_type=ptype, insn_cnt=len(raw) // 8, insns=addr(code), license=addr(lic),
            log_level=level, log_size=size if level else 0, log_buf=addr(log), prog_flags=prog_flags,
            prog_name=name.encode()[:15], expected_attach_type=expected_attach_type,
            prog_btf_fd=prog_btf_fd or 0, attach_btf_id=attach_btf_id,
            func_info_rec_size=func_info_rec_size if fi else 0, func_info=addr(fi),
            func_info_cnt=len(func_info) // func_info_rec_size if fi else 0,
            line_info_rec_size=line_info_rec_size if li else 0, line_info=addr(li),
            line_info_cnt=len(line_info) // line_info_rec_size if li else 0,
        )
        try:
            fd = bpf(Cmd.PROG_LOAD, attr)
        except OSError as exc:
            text = log.value.decode(errors="replace") if log is not None else ""
            raise _LoadFailed(exc, text) from exc
        return fd, (log.value.decode(errors="replace") if log is not None else "")

    try:
        fd, text = attempt(log_level, log_size)
    except _LoadFailed as fail:
        text = fail.log
        if not text:
            # Load again with a log so the error says why (the verifier is deterministic).
            try:
                fd, text = attempt(1, log_size)
                return LoadedProgram(fd, ptype, text)  # accepted with a log: odd, but fine
            except _LoadFailed as again:
                if again.exc.errno == E.ENOSPC:
                    try:
                        fd, text = attempt(1, 1 << 26)
                        return LoadedProgram(fd, ptype, text)
                    except _LoadFailed as third:
                        again = third
                fail, text = again, again.log
        exc = fail.exc
        if exc.errno in (E.EINVAL, E.EACCES, E.E2BIG, E.ERANGE, E.ENOSPC) and text:
            tail = "\n".join([r for r in text.splitlines() if r.strip()][-3:])
            raise VerifierError(
                f"BPF_PROG_LOAD ({ptype.name.lower()}): {E.errorcode.get(exc.errno, exc.errno)}: verifier rejected the program: {tail}",
                errno=exc.errno,
                log=text,
            ) from exc
        raise_kernel_error(exc, f"BPF_PROG_LOAD ({ptype.name.lower()})", text)
    return LoadedProgram(fd, ptype, text)


class _LoadFailed(Exception):
    def __init__(self, exc: OSError, log: str) -> None:
        super().__init__(str(exc))
        self.exc = exc
        self.log = log


def bpf_available() -> tuple[bool, str]:
    """Can this process load programs? (True, "") or (False, why)."""
    try:
        with load_program(bytes.fromhex("b700000000000000" "9500000000000000"), ProgType.SOCKET_FILTER):
            return True, ""
    except KernelError as exc:
        return False, str(exc)
