"""bpfpatch.kernel.libbpf: objects loaded through Debian's libbpf.so.1 (maps, global data, BTF)."""

from __future__ import annotations

import errno
import struct

import pytest

from bpfpatch.kernel.libbpf import LibbpfError, load_object, num_possible_cpus
from conftest import PROGS, compile_bpf

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def maps_obj(objdir):
    return compile_bpf(PROGS / "check" / "maps.c", objdir)


def _u32(v: int) -> bytes:
    return struct.pack("<I", v)


def test_maps_and_global_data_as_libbpf_creates_them(maps_obj):
    with load_object(maps_obj) as obj:
        assert set(obj.programs) == {"count_packets"}
        names = set(obj.maps)
        assert {"counts", "by_len", "bytes_seen"} <= names
        assert any(n.endswith(".rodata") for n in names) and any(n.endswith(".bss") for n in names)
        rodata, data = obj.map(".rodata"), obj.map(".data")
        assert rodata.info.internal and rodata.lookup(_u32(0)) == _u32(100)
        assert data.initial_value() == _u32(7)
        # .rodata is frozen, as libbpf freezes it: user space can no longer write it.
        with pytest.raises(LibbpfError) as e:
            rodata.update(_u32(0), _u32(1))
        assert e.value.errno == errno.EPERM
        prog = obj.program("socket")  # by section
        assert prog is obj.program("count_packets")
        pkt = bytes(14) + bytes(200)  # skb->len counts from the network header for socket filters
        assert prog.test_run(pkt).retval == 1
        assert prog.test_run(bytes(14) + bytes(50)).retval == 0
        counts = obj.map("counts")
        assert struct.unpack("<Q", counts.lookup(_u32(1)))[0] == 1
        assert dict(obj.map("by_len").items()) == {_u32(200): _u32(1), _u32(50): _u32(0)}
        assert struct.unpack("<Q", obj.map(".bss").lookup(_u32(0)))[0] == 2
        pc = obj.map("bytes_seen")
        assert pc.info.percpu and pc.value_bytes == 8 * num_possible_cpus()
        per_cpu = [struct.unpack("<Q", v)[0] for v in pc.per_cpu(pc.lookup(_u32(1)))]
        assert sum(per_cpu) == 200
        keys, values, n = counts.dump()
        assert n == 4 and len(keys) == 16 and values[8:16] == struct.pack("<Q", 1)
        hk, hv, hn = obj.map("by_len").dump()
        assert hn == 2 and sorted(hk[i:i + 4] for i in (0, 4)) == [_u32(50), _u32(200)]


def test_open_from_bytes_and_instructions_after_relocation(maps_obj):
    with load_object(maps_obj.read_bytes(), name="maps") as obj:
        prog = obj.program()
        raw = prog.insns()
        fds = {m.fd for m in obj.maps.values()}
        # Every map reference is an ld_imm64 carrying one of this object's map fds.
        refs = [struct.unpack_from("<i", raw, 8 * i + 4)[0] for i in range(len(raw) // 8)
                if raw[8 * i] == 0x18 and raw[8 * i + 1] >> 4 in (1, 2)]
        assert refs and set(refs) <= fds
        with obj.load_insns(raw, prog) as again:
            assert again.test_run(bytes(14) + bytes(150)).retval == 1
        assert obj.map_by_fd(refs[0]) is not None


def test_each_load_gets_fresh_maps(maps_obj):
    with load_object(maps_obj) as a, load_object(maps_obj) as b:
        a.program().test_run(bytes(14) + bytes(200))
        assert a.map("counts").lookup(_u32(1)) != b.map("counts").lookup(_u32(1))


def test_refusals_are_typed_with_libbpf_log(tmp_path, maps_obj, objdir):
    with pytest.raises(LibbpfError, match="no such file"):
        load_object(tmp_path / "missing.o")
    with pytest.raises(LibbpfError, match="cannot open") as e:
        load_object(b"not an ELF object")
    assert e.value.log  # libbpf said why, through the print callback
    with pytest.raises(LibbpfError) as e:
        load_object(compile_bpf(PROGS / "check" / "refused.c", objdir))
    assert e.value.errno == errno.EACCES and "invalid access to packet" in e.value.log
    with load_object(maps_obj) as obj, pytest.raises(LibbpfError, match="no program or section"):
        obj.program("nope")


def test_close_is_deterministic(maps_obj):
    obj = load_object(maps_obj)
    fd = obj.program().fd
    obj.close()
    obj.close()
    import os
    with pytest.raises(OSError):
        os.fstat(fd)


def test_an_optional_section_is_found_as_the_elf_writes_it(objdir):
    # libbpf names SEC("?tc") "tc": `check --section '?tc'` was "no program or section '?tc'", and
    # "tc" was "section 'tc' holds optional_prog, always_prog: name one"
    path = compile_bpf(PROGS / "kernel" / "optional.c", objdir)
    with load_object(path, programs=["?tc"]) as obj:
        assert obj.program("?tc").name == "optional_prog" and obj.program("?tc").loaded
        assert not obj.programs["always_prog"].loaded
        assert obj.program("?tc:optional_prog").elf_section == "?tc"
        assert obj.program("tc:optional_prog").name == "optional_prog"  # libbpf's spelling still works
        assert obj.program("tc").name == "always_prog"  # the ELF's "tc" is the other one
    with load_object(path, programs=["tc:always_prog"]) as obj:
        assert obj.programs["always_prog"].loaded and not obj.programs["optional_prog"].loaded


def test_a_name_that_is_not_utf8_is_a_typed_error_or_shown_escaped(objdir):
    # a byte-mutated string table: libbpf opens the object, and its program name was decoded as
    # UTF-8 (check: UnicodeDecodeError in load_object; elastic/ebpf KprobeConnectHook mutant 10)
    import io

    from elftools.elf.elffile import ELFFile

    from bpfpatch.errors import BpfPatchError

    data = bytearray(compile_bpf(PROGS / "kernel" / "optional.c", objdir).read_bytes())
    strtab = ELFFile(io.BytesIO(bytes(data))).get_section_by_name(".strtab")
    at = bytes(data).index(b"always_prog\0", strtab["sh_offset"])
    assert at < strtab["sh_offset"] + strtab["sh_size"]
    data[at + 6] = 0xB9  # "always\xb9prog"
    damaged = objdir / "optional-bad-name.o"
    damaged.write_bytes(bytes(data))
    try:
        obj = load_object(damaged, programs=[])
    except BpfPatchError as exc:
        assert str(exc)
        return
    with obj:
        assert "always\\xb9prog" in obj.programs
