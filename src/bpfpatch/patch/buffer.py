"""Patch buffers: parsed, checked and encoded once, with their references as typed records.

A patch is a sequence of `Insn` / `PatchInsn` / assembly text (or one
assembly string).  `BufferCache.prepare` checks every item where it enters
(opcode known, fields ints in range, reserved fields zero: `insn_problem`),
resolves the buffer's references before anything changes (probe before
write) and encodes the slot words the list stores.  The result, `Prepared`,
is kept by content: a patch equal to one seen before -- the same tuple, an
equal fresh list or tuple, the same assembly text -- costs one dictionary
lookup.
"""

from __future__ import annotations

from array import array
from typing import Any, Callable, NamedTuple, Sequence, Union

from bpfpatch.errors import AsmError, PatchError
from bpfpatch.isa import AX_REG, LD_IMM64, Insn, Target, insn_words, is_subprog_ref, target_of
from bpfpatch.isa.opcodes import MAX_USER_REG
from bpfpatch.isa.rules import insn_problem
from bpfpatch.patch.store import ID_TYPECODE


class PatchInsn(NamedTuple):
    """A patch-buffer item that carries more than an `Insn`.

    ``target``: an existing `Node` the jump/call/pseudo-func goes to (its
    offset is then ignored).  ``aux``: the aux data of the new node.
    """

    insn: Insn
    target: Any = None  # a Node of the same list
    aux: Any = None


PatchItem = Union[Insn, PatchInsn, str]
Patch = Union[Sequence[PatchItem], str]


class ToItem(NamedTuple):
    """Item `item` references item `dest` of the same buffer."""

    item: int
    dest: int
    subprog: bool  # a pseudo call / pseudo func: its target starts a subprogram


class ToNext(NamedTuple):
    """Item `item` references the node after the patch (one past the buffer's end)."""

    item: int
    subprog: bool


class ToNode(NamedTuple):
    """Item `item` references the existing node `node` (``PatchInsn(target=...)``)."""

    item: int
    node: int
    subprog: bool


class ToSiteTarget(NamedTuple):
    """Row `item` of a bulk template goes where the site's own jump went (``to_site_target``, `SITE`)."""

    item: int


BufferRef = Union[ToItem, ToNext, ToNode]


class Prepared(NamedTuple):
    """A checked, encoded patch with its references, computed once."""

    insns: tuple[Insn, ...]
    refs: tuple[BufferRef, ...]
    w0: array  # encoded first slot words, so linearize never touches the Insn objects
    w1: array  # second slot words (ld_imm64), else 0
    wide: bytes  # 1 per ld_imm64
    aux: list[Any]
    any_aux: bool
    # Without the last item, ready for `replace` (the replaced node becomes the last item).
    head_w0: array
    head_w1: array
    head_wide: bytes
    head_aux: list[Any]
    minus: array  # -1 per head item (orig INSERTED, no anchor, no target)
    last_w0: int
    last_w1: int
    last_wide: int
    # May `replace` defer it (fast paths): new nodes only before the node, references only
    # inside the buffer or to the node after it, no calls, no aux on the last item.
    deferrable: bool
    # May `prepend` / `append` defer it: references only inside the buffer or to the node after it, no calls.
    insertable: bool


def prepare(items: list[PatchInsn], refs: tuple[BufferRef, ...]) -> Prepared:
    """Encode checked items and their references."""
    insns = tuple(it[0] for it in items)
    aux = [it[2] for it in items]
    w0, w1 = array("Q"), array("Q")
    for insn in insns:
        a, b = insn_words(insn)
        w0.append(a)
        w1.append(b)
    wide = bytes(i[0] == LD_IMM64 for i in insns)
    local = all(isinstance(r, (ToItem, ToNext)) and not r.subprog for r in refs)
    return Prepared(
        insns, refs, w0, w1, wide, aux, any(a is not None for a in aux),
        w0[:-1], w1[:-1], wide[:-1], aux[:-1], array(ID_TYPECODE, [-1] * (len(insns) - 1)),
        w0[-1], w1[-1], wide[-1],
        len(insns) > 1 and aux[-1] is None and local, local,
    )


def plan(items: list[PatchInsn], has_after: bool) -> tuple[BufferRef, ...]:
    """Resolve the buffer's references before anything is changed (probe before write).

    A jump's offset is relative to the buffer (kernel convention): it names
    an item, or one past the end (the node after the patch); an item with a
    ``target`` node goes there whatever its offset.
    """
    refs: list[BufferRef] = []
    starts: list[int] | None = None
    nslots = len(items)
    for i, it in enumerate(items):
        insn = it[0]
        field = target_of(insn[0], insn[2])
        if field == Target.NONE:
            continue
        subprog = is_subprog_ref(insn[0], insn[2])
        if it[1] is not None:
            refs.append(ToNode(i, it[1]._id, subprog))
            continue
        if starts is None:
            starts, s = [], 0
            for p in items:
                starts.append(s)
                s += 2 if p[0][0] == LD_IMM64 else 1
            nslots = s
        if field == Target.OFF:
            rel = insn[3]
        else:
            rel = insn[4] & 0xFFFFFFFF
            rel = rel - (1 << 32) if rel >> 31 else rel
        dest = starts[i] + rel + 1
        if dest == nslots:
            if not has_after:
                raise PatchError(f"patch item {i}: jumps past the end of the program")
            refs.append(ToNext(i, subprog))
            continue
        try:
            j = starts.index(dest)
        except ValueError:
            raise PatchError(
                f"patch item {i}: jump to buffer slot {dest} leaves the patch buffer "
                f"(0..{nslots}); give a target node with PatchInsn(insn, target=node)"
            ) from None
        refs.append(ToItem(i, j, subprog))
    return tuple(refs)


class BufferCache:
    """Parses and checks patch buffers for one list, and keeps them by content.

    `kernel_internal` admits register 11 (the kernel's AX) and the
    kernel's zero-extension marker.
    """

    #: Distinct patches kept per list before the cache starts over.
    MAX_ENTRIES = 4096

    def __init__(self, *, kernel_internal: bool = False) -> None:
        self.kernel_internal = kernel_internal
        self.max_reg = AX_REG if kernel_internal else MAX_USER_REG
        # By identity (a tuple a pass reuses), then by content (equal tuples, fresh lists, text),
        # per "has a node after it"; entries: (the patch, its Prepared).
        self.by_id: tuple[dict[int, tuple[Any, Prepared]], dict[int, tuple[Any, Prepared]]] = ({}, {})
        self.by_content: tuple[dict[Any, Prepared], dict[Any, Prepared]] = ({}, {})

    def lookup(self, patch: Any, has_after: bool) -> Prepared | None:
        """The prepared patch if this content was prepared before, else None (cheap)."""
        if type(patch) is tuple:
            hit = self.by_id[has_after].get(id(patch))
            if hit is not None and hit[0] is patch:
                return hit[1]
        elif type(patch) is list:
            patch = tuple(patch)
        elif type(patch) is not str:
            return None
        try:
            return self.by_content[has_after].get(patch)
        except TypeError:  # an unhashable item (aux data): not cached by content
            return None

    def prepare(self, check_node: Callable[[Any, str], int], patch: Patch, has_after: bool) -> Prepared:
        """The prepared patch: from the cache, or parsed, checked, planned and remembered.

        ``check_node(node, what)`` is the list's node check: a target must be a
        live node of this list.
        """
        prep = self.lookup(patch, has_after)
        if prep is not None:
            return prep
        items = self.parse(patch, check_node)
        prep = prepare(items, plan(items, has_after))
        self.remember(patch, items, prep, has_after)
        return prep

    def remember(self, patch: Any, items: list[PatchInsn], prep: Prepared, has_after: bool) -> None:
        """Keep `prep` for `patch`: by content (text, or plain instructions) and, for a tuple, by identity."""
        plain = all(it[1] is None and it[2] is None for it in items)
        if type(patch) is str or (type(patch) in (list, tuple) and plain and all(type(i) is Insn for i in patch)):
            content = self.by_content[has_after]
            if len(content) >= self.MAX_ENTRIES:
                content.clear()
            content[patch if type(patch) is not list else tuple(patch)] = prep
        if type(patch) is tuple and all(it[1] is None for it in items):
            ids = self.by_id[has_after]
            if len(ids) >= self.MAX_ENTRIES:
                ids.clear()
            ids[id(patch)] = (patch, prep)

    def parse(self, patch: Patch, check_node: Callable[[Any, str], int]) -> list[PatchInsn]:
        """Patch -> checked items (text assembled), refusing anything the kernel would."""
        if isinstance(patch, str):
            patch = [patch]
        elif not isinstance(patch, (list, tuple)):
            raise PatchError(f"a patch is a list of instructions or assembly text, not {type(patch).__name__}")
        items: list[PatchInsn] = []
        for item in patch:
            if isinstance(item, PatchInsn):
                self.check_insn(len(items), item.insn)
                if item.target is not None:
                    check_node(item.target, f"patch item {len(items)} target")
                    if target_of(item.insn[0], item.insn[2]) == Target.NONE:
                        raise PatchError(f"patch item {len(items)}: {item.insn} has a target but is not a jump or call")
                items.append(PatchInsn(Insn(*item.insn), item.target, item.aux))
            elif isinstance(item, str):
                from bpfpatch.asm import assemble  # text patches only

                try:
                    insns = assemble(item, ax=self.kernel_internal)  # r11 in text only where the list admits it
                except AsmError as e:
                    raise PatchError(f"patch item {len(items)}: {e}") from e
                for insn in insns:
                    self.check_insn(len(items), insn)
                    items.append(PatchInsn(insn))
            elif isinstance(item, tuple):
                self.check_insn(len(items), item)
                items.append(PatchInsn(Insn(*item)))
            else:
                raise PatchError(f"patch item {len(items)}: {item!r} is not an Insn, PatchInsn or assembly text")
        if not items:
            raise PatchError("empty patch: to remove an instruction use delete()")
        return items

    def check_insn(self, i: int, insn: Any) -> None:
        """Refuse an item that is not an instruction the kernel (or, kernel-internal, the verifier) emits."""
        why = insn_problem(insn, max_reg=self.max_reg, kernel_internal=self.kernel_internal) if isinstance(insn, tuple) else (
            f"{type(insn).__name__} is not an instruction"
        )
        if why is not None:
            if self.max_reg == MAX_USER_REG and isinstance(insn, tuple) and len(insn) == 5 and AX_REG in insn[1:3]:
                why += " (register 11 is the kernel's AX: PatchList(program, kernel_internal=True) admits it)"
            raise PatchError(f"patch item {i}: {why}")
