"""`bpfpatch cover`: line and branch coverage of compiled BPF objects, from the tool writer's kit.

`instrument_object` adds a counter per basic block (in global data the object
carries), `run_coverage` loads the object with libbpf and runs it on inputs,
`report` turns counters into an lcov tracefile and genhtml's HTML.
"""

from bpfpatch.cover.instrument import CoverError, CoverMap, Counter, instrument_object, read_cover_map

__all__ = ["CoverError", "CoverMap", "Counter", "instrument_object", "read_cover_map"]
