"""BTF and BTF.ext: types, strings, map definitions, func_info, line_info and CO-RE records."""

from bpfpatch.btf.ext import BtfExt, CoreRelo, CoreReloKind, CoreRelos, func_info_bytes, line_info_bytes, parse_btf_ext
from bpfpatch.btf.types import Btf, BtfKind, BtfType

__all__ = ["Btf", "BtfExt", "CoreRelo", "CoreReloKind", "CoreRelos", "BtfKind", "BtfType", "func_info_bytes", "line_info_bytes", "parse_btf_ext"]
