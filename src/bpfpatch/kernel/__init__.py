"""The kernel as oracle: load programs, read their xlated form, run them, compare.

    >>> from bpfpatch.kernel import load_program
    >>> with load_program(program, "socket_filter") as p:
    ...     p.xlated(); p.test_run(b"\\0" * 64).retval
    >>> with load_object("filter.o") as obj:          # through libbpf: maps, BTF, CO-RE
    ...     obj.program("xdp").test_run(packet).retval
"""

from bpfpatch.kernel.equiv import EquivalenceReport, Verdict, check_equivalence, generate_inputs
from bpfpatch.kernel.loader import (
    LoadedProgram,
    ProgType,
    TestRunResult,
    bpf_available,
    load_program,
    prog_type_of,
)
from bpfpatch.kernel.libbpf import LibbpfError, LibbpfMissing, LoadedObject, load_object
from bpfpatch.kernel.maps import Map, MapSpec, MapType, create_map, maps_from_description, patch_map_fds

__all__ = [
    "EquivalenceReport", "LibbpfError", "LibbpfMissing", "LoadedObject", "LoadedProgram", "Map", "MapSpec", "MapType", "ProgType", "TestRunResult",
    "Verdict", "bpf_available", "check_equivalence", "create_map", "generate_inputs", "load_object",
    "load_program", "maps_from_description", "patch_map_fds", "prog_type_of",
]
