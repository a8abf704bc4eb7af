"""The builders' fast paths (isa/build.py) against their field-by-field reference, by hypothesis.

Every named constructor generated flat by ``_form`` must give what the function it decorates
(``__wrapped__``, the field-by-field checks) gives -- the same `Insn` with fields of the same
types -- or raise the same `BuildError`; so must the generic families against the field-by-field checks.
"""

from __future__ import annotations

import inspect

from hypothesis import example, given, settings
from hypothesis import strategies as st

from bpfpatch.isa import AluOp, Insn, JmpOp, Reg
from bpfpatch.isa import build as b

FLAT = sorted(n for n, f in vars(b).items() if inspect.isfunction(f) and hasattr(f, "__wrapped__") and f.__module__ == b.__name__)

# Field values around every range's edges, of every type a caller may pass.
_edges = [-(1 << 32), -(1 << 31) - 1, -(1 << 31), -0x8001, -0x8000, -1, 0, 1, 10, 11, 12, 0x7FFF, 0x8000, 0xFFFF,
          (1 << 31) - 1, 1 << 31, (1 << 32) - 1, 1 << 32]
values = st.one_of(st.sampled_from(_edges), st.integers(), st.sampled_from(list(Reg)), st.booleans(),
                   st.sampled_from([1.0, None, "1", AluOp.ADD]))


def _outcome(fn, args):
    try:
        insn = fn(*args)
    except b.BuildError as exc:
        return ("refused", str(exc))
    assert type(insn) is Insn
    return ("built", tuple(insn), tuple(type(v) for v in insn))


def test_the_flat_forms_are_the_common_builders():
    assert len(FLAT) >= 100
    for name in ("jne_imm", "xor32_reg", "ja", "div64_reg", "mov64_imm", "sdiv32_reg", "neg64"):
        assert name in FLAT


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(FLAT), st.lists(values, min_size=3, max_size=3))
@example("sdiv64_imm", [1, 0xFFFFFFFF, 0])
@example("jne_imm", [Reg.R1, 0, 2])
@example("ja", [-0x8001, 0, 0])
def test_a_flat_builder_is_its_reference(name, pool):
    fn = getattr(b, name)
    args = pool[: len(inspect.signature(fn.__wrapped__).parameters)]
    assert _outcome(fn, args) == _outcome(fn.__wrapped__, args)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["alu64_imm", "alu64_reg", "alu32_imm", "alu32_reg", "jmp_imm", "jmp_reg", "jmp32_imm", "jmp32_reg"]),
       st.one_of(st.sampled_from(list(AluOp) + list(JmpOp)), st.sampled_from([0x10, 0x20, 0x0F, -1, 1.5, None, "add"])),
       st.lists(values, min_size=3, max_size=3))
def test_a_family_builder_is_its_reference(name, op, fields):
    fn = getattr(b, name)
    ops = AluOp if name.startswith("alu") else JmpOp
    cls = {"alu64": 0x07, "alu32": 0x04, "jmp": 0x05, "jmp32": 0x06}[name.split("_")[0]]
    source = 0x08 if name.endswith("_reg") else 0x00
    dst, second, off = fields
    src, imm = (second, 0) if name.endswith("_reg") else (0, second)

    def reference(*_):  # the families as they were written before their fast paths: field by field
        try:
            code = cls | ops(op) | source
        except (ValueError, TypeError):
            raise b.BuildError(f"{name}: {op!r} is not a {ops.__name__}") from None
        for what, v in (("dst", dst), ("src", src)):
            if not isinstance(v, int) or not 0 <= v <= 11:
                raise b.BuildError(f"{name}: {what} register {v!r} is not r0..r10 (or 11, AX)")
        fields = []
        for what, v, bits, signed in (("off", off, 16, True), ("imm", imm, 32, False)):
            lo, hi = -(1 << (bits - 1)), (1 << (bits - 1 if signed else bits)) - 1
            if not isinstance(v, int) or not lo <= v <= hi:
                raise b.BuildError(f"{name}: {what} {v!r} does not fit {bits} bits")
            v = int(v) & ((1 << bits) - 1)
            fields.append(v - (1 << bits) if v >> (bits - 1) else v)
        return Insn(code, int(dst), int(src), *fields)

    assert _outcome(fn, (op, dst, second, off)) == _outcome(reference, ())
