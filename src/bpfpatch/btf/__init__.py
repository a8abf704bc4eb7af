"""BTF and BTF.ext: types, strings, map definitions, func_info and line_info."""

from bpfpatch.btf.ext import BtfExt, func_info_bytes, line_info_bytes, parse_btf_ext
from bpfpatch.btf.types import Btf, BtfKind, BtfType

__all__ = ["Btf", "BtfExt", "BtfKind", "BtfType", "func_info_bytes", "line_info_bytes", "parse_btf_ext"]
