"""Regenerate src/bpfpatch/isa/helper_ids.py from a kernel tree's include/uapi/linux/bpf.h.

    python tools/gen_helper_ids.py /work/src/linux-source-6.12 > src/bpfpatch/isa/helper_ids.py

The table is ___BPF_FUNC_MAPPER's FN(name, id) list, in id order.
"""

import re
import sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/src/linux-source-6.12")
text = (root / "include/uapi/linux/bpf.h").read_text()
body = text[text.index("#define ___BPF_FUNC_MAPPER"):]
body = body[: body.index("\n\n")]
pairs = [(int(i), n) for n, i in re.findall(r"FN\((\w+),\s*(\d+)", body)]
assert [i for i, _ in pairs] == list(range(len(pairs))), "ids are not dense"
version = re.search(r"linux-source-([\d.]+)", str(root))
print('"""Helper function ids of the uapi (``enum bpf_func_id``), generated: do not edit.')
print()
print(f"Source: include/uapi/linux/bpf.h (___BPF_FUNC_MAPPER) of Linux {version.group(1) if version else '?'},")
print("by tools/gen_helper_ids.py.  ``HELPER_NAMES[id]`` is the name without the ``bpf_`` prefix.")
print('"""')
print()
print("HELPER_NAMES: tuple[str, ...] = (")
for i, n in pairs:
    print(f'    "{n}",  # {i}')
print(")")
print()
print('HELPER_IDS: dict[str, int] = {name: i for i, name in enumerate(HELPER_NAMES)}')
print('"""Helper name (without ``bpf_``) -> id."""')
