"""Writing output files: the CLI uses the library's one atomic writer (`bpfpatch.fileio`)."""

from bpfpatch.fileio import write_atomic

__all__ = ["write_atomic"]
