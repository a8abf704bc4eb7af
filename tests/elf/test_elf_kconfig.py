"""``__kconfig`` externs: the ``.kconfig`` map libbpf builds, laid out and filled as libbpf does.

Layout and values are checked without a kernel (a configuration given as text), then against
libbpf itself: the linked program's map bytes and offsets equal what libbpf loaded, and the
analysis of the linked program agrees with the kernel's log.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bpfpatch.elf import read_object
from bpfpatch.elf.kconfig import KCONFIG_SECTION, KconfigExtern, kconfig_data, kernel_version
from bpfpatch.errors import ElfError
from bpfpatch.isa import decode_slots, slot_rows
from conftest import PROGS, compile_bpf


@pytest.fixture(scope="module")
def kconfig_object(tmp_path_factory):
    return compile_bpf(PROGS / "elf" / "kconfig.c", tmp_path_factory.mktemp("kconfig"))


def test_externs_are_laid_out_as_libbpf_sorts_them(kconfig_object):
    externs = read_object(kconfig_object.read_bytes()).kconfig
    # alignment descending, then size ascending, then name; each at its alignment
    assert [(e.name, e.offset, e.size, e.kind) for e in externs.values()] == [
        ("CONFIG_BPFPATCH_NOT_AN_OPTION", 0, 8, "int"),
        ("CONFIG_BPF_JIT", 8, 4, "tristate"),
        ("CONFIG_HZ", 12, 4, "int"),
        ("LINUX_KERNEL_VERSION", 16, 4, "int"),
        ("CONFIG_BPF_SYSCALL", 20, 1, "bool"),
        ("LINUX_HAS_BPF_COOKIE", 21, 1, "bool"),
        ("CONFIG_DEFAULT_HOSTNAME", 22, 8, "chars"),
    ]
    assert {e.name for e in externs.values() if e.weak} == {
        "CONFIG_BPFPATCH_NOT_AN_OPTION", "CONFIG_BPF_JIT", "LINUX_HAS_BPF_COOKIE", "CONFIG_DEFAULT_HOSTNAME"}


def test_values_are_written_as_libbpf_writes_them(kconfig_object):
    externs = list(read_object(kconfig_object.read_bytes()).kconfig.values())
    config = {"CONFIG_HZ": "1000", "CONFIG_BPF_SYSCALL": "y", "CONFIG_BPF_JIT": "m",
              "CONFIG_DEFAULT_HOSTNAME": '"a-long-hostname"'}
    data = kconfig_data(externs, config)
    assert len(data) == 30
    assert data[0:8] == bytes(8)  # a weak option the configuration does not set: 0
    assert int.from_bytes(data[8:12], "little") == 2  # m: TRI_MODULE
    assert int.from_bytes(data[12:16], "little") == 1000
    assert int.from_bytes(data[16:20], "little") == kernel_version()
    assert data[20] == 1
    assert data[22:30] == b"a-long-\0"  # truncated to the array, NUL-terminated


def test_a_big_endian_object_gets_its_numbers_in_its_own_byte_order(kconfig_object, tmp_path):
    big = compile_bpf(PROGS / "elf" / "kconfig.c", tmp_path, extra=("-target", "bpfeb"))
    little_externs = list(read_object(kconfig_object.read_bytes()).kconfig.values())
    obj = read_object(big.read_bytes())
    assert obj.byteorder == "big"
    externs = list(obj.kconfig.values())
    assert [(e.name, e.offset, e.size, e.kind) for e in externs] == \
        [(e.name, e.offset, e.size, e.kind) for e in little_externs]
    config = {"CONFIG_HZ": "1000", "CONFIG_BPF_SYSCALL": "y", "CONFIG_BPF_JIT": "m"}
    data, little = kconfig_data(externs, config, byteorder="big"), kconfig_data(little_externs, config)
    by_name = {e.name: e for e in externs}
    for name, value in (("CONFIG_BPF_JIT", 2), ("CONFIG_HZ", 1000), ("LINUX_KERNEL_VERSION", kernel_version())):
        e = by_name[name]
        assert data[e.offset:e.offset + e.size] == value.to_bytes(e.size, "big")
        assert little[e.offset:e.offset + e.size] == value.to_bytes(e.size, "little")
    # the linker fills the map for the object it links: the big-endian one in big-endian
    prog = obj.linked_program("socket")
    expected = kconfig_data(externs, byteorder="big")
    assert prog.meta["map_specs"][KCONFIG_SECTION].initial == expected
    assert expected != kconfig_data(little_externs)


@pytest.mark.parametrize("config, message", [
    ({"CONFIG_BPF_SYSCALL": "y"}, "'CONFIG_HZ' \\(strong\\): not set"),
    ({"CONFIG_HZ": "250", "CONFIG_BPF_SYSCALL": "m"}, "'CONFIG_BPF_SYSCALL': value 'm' does not fit its type \\(bool\\)"),
    ({"CONFIG_HZ": "0x100000000", "CONFIG_BPF_SYSCALL": "y"}, "'CONFIG_HZ': value 4294967296 doesn't fit in 4 bytes"),
    ({"CONFIG_HZ": "fast", "CONFIG_BPF_SYSCALL": "y"}, "'CONFIG_HZ': value 'fast' isn't a valid integer"),
    ({"CONFIG_HZ": '"250"', "CONFIG_BPF_SYSCALL": "y"}, "'CONFIG_HZ': value \"250\" is not a string it can hold"),
])
def test_a_value_libbpf_refuses_is_refused_by_name(kconfig_object, config, message):
    externs = list(read_object(kconfig_object.read_bytes()).kconfig.values())
    with pytest.raises(ElfError, match=message) as exc:
        kconfig_data(externs, config)
    assert exc.value.section == KCONFIG_SECTION


def test_virtual_externs():
    assert kernel_version("6.18.44-fc-v669") == (6 << 16) + (18 << 8) + 44
    assert kernel_version("5.4.300") == (5 << 16) + (4 << 8) + 255  # the patch level saturates, as KERNEL_VERSION's byte
    unknown = KconfigExtern("LINUX_FUTURE_THING", 0, 1, 1, "bool")
    with pytest.raises(ElfError, match="unrecognized virtual extern"):
        kconfig_data([unknown], {})
    assert kconfig_data([KconfigExtern("LINUX_FUTURE_THING", 0, 1, 1, "bool", weak=True)], {}) == b"\0"


@pytest.mark.kernel
def test_the_linked_map_is_what_libbpf_loads(kconfig_object):
    from bpfpatch.kernel.libbpf import load_object

    prog = read_object(kconfig_object.read_bytes()).linked_program("socket")
    refs = {slot: off for slot, (name, off) in prog.meta["map_refs"].items() if name == KCONFIG_SECTION}
    assert len(refs) == 7
    with load_object(kconfig_object) as loaded:
        assert loaded.map(KCONFIG_SECTION).lookup(bytes(4)) == prog.meta["map_specs"][KCONFIG_SECTION].initial
        rows = slot_rows(decode_slots(loaded.program("kconfig_values").insns()))
    assert {slot: rows[slot + 1][4] for slot in refs} == refs  # libbpf's value offsets in the second slots


@pytest.mark.kernel
def test_the_analysis_reads_the_values_as_the_verifier_does(kconfig_object):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis"))
    from analysis_kernel import check_object

    (result,) = check_object(str(kconfig_object))
    assert not result.kernel_error and not result.our_error
    assert result.cmp.type_mismatches == []
