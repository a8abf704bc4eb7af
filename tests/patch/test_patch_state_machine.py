"""One state machine for the patch list: every fast-path combination against the kernel's algorithm.

Random valid programs (subprograms, ld_imm64, pseudo calls and funcs, JMP32,
backward jumps, func/line info, aux data) are patched by random operations
-- replace / prepend / append / delete of any node, the same patch repeated
at many nodes by replace, prepend and append mixed (what the fast paths defer
and group), the nodes a deferred prepend or append returns used at once or
later, `replace_rows`, looks at the list in between -- on a `PatchList` with one combination of
`FastPaths`, and on `bpfpatch.reference` (one patch at a time, as the
kernel does).  After every step the store's invariants hold
(`PatchList.check`) and both lay out the same program: bytes, subprogram
starts, func/line info, aux data.

Invalid operations are drawn too (fields out of range or of the wrong type,
reserved fields set, register 11 without ``kernel_internal``, the head,
deleted or foreign nodes and targets, a delete that would strand a jump, a
jump leaving its buffer): each must raise a `PatchError` at the call and
leave the list laying out the same bytes as before.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from bpfpatch import Insn, PatchError, PatchInsn, PatchList, Program
from bpfpatch.patch import SITE, FastPaths, Row, S
from bpfpatch.reference import ReferencePatcher

from progtools import patch_buffers, programs, slots_rows

# Insns the kernel refuses, each for one reason the patch API must name at the call.
BAD_INSNS = [
    Insn(0xB7, 16, 0, 0, 1),  # dst register out of range (16 would spill into src)
    Insn(0xBF, 0, 16, 0, 0),  # src register out of range
    Insn(0xB7, 11, 0, 0, 1),  # the kernel's AX without kernel_internal
    Insn(0xB7, 0, 0, 0, 1 << 40),  # imm wider than 32 bits
    Insn(0x15, 1, 0, -40000, 0),  # off wider than 16 bits
    Insn(0x95, 1),  # exit with a reserved field set
    Insn(0xB7, 0, 1, 0, 1),  # mov imm with src set
    Insn(0x00),  # no such opcode (a raw ld_imm64 half)
    Insn(0x18, 1, 0, 0, 1 << 64),  # ld_imm64 wider than 64 bits
    Insn(0xB7, "r0", 0, 0, 1),  # a field that is not an int
    Insn(0xB7, 0, 0, 0, 1.5),
    Insn(0xB7, 0, 0, 0, None),
]


def _out(pl_or_ref) -> tuple:
    p = pl_or_ref.linearize() if isinstance(pl_or_ref, PatchList) else pl_or_ref.program_out()
    return slots_rows(p), p.subprogs, p.func_info, p.line_info, p.aux


class PatchListMachine(RuleBasedStateMachine):
    """See the module docstring; `FAST` is set per combination by `_machine`."""

    FAST = FastPaths()

    @initialize(prog=programs(), data=st.data())
    def start(self, prog: Program, data) -> None:
        self.prog = prog
        self.pl = PatchList(prog, fast=self.FAST)
        self.ref = ReferencePatcher(prog)
        self.other = PatchList(prog, fast=self.FAST)  # for foreign nodes
        self.gone = []  # deleted nodes
        # A few patches to repeat at many sites (what `replace` defers): tuples, some with aux.
        self.pool = []
        for _ in range(data.draw(st.integers(1, 3))):
            buf = [it for it in patch_buffers(data.draw, []) if not (isinstance(it, PatchInsn) and it.target is not None)]
            # Some aux data a sequence: one object at every site, never spread over several.
            buf = [PatchInsn(it.insn, aux=(it.aux, 1)) if isinstance(it, PatchInsn) and data.draw(st.booleans()) else it
                   for it in buf] or [Insn(0xB7, 1, 0, 0, 1)]
            self.pool.append(tuple(buf) if data.draw(st.booleans()) else buf)
        self.refresh()

    def refresh(self) -> None:
        """Map live nodes to reference keys by position (the layouts are equal, checked every step)."""
        self.nodes = list(self.pl)
        keys = [s.key for s in self.ref.slots if s.key is not None]
        assert len(keys) == len(self.nodes)
        self.key = {n.id: k for n, k in zip(self.nodes, keys)}

    def live(self, data, exclude=()) -> "object":
        nodes = [n for n in self.nodes if not n.deleted and n not in exclude]
        return data.draw(st.sampled_from(nodes)) if nodes else None

    def refused(self, call) -> None:
        """`call` must raise PatchError and leave the list as it was."""
        before = _out(self.pl)
        with pytest.raises(PatchError):
            call()
        self.pl.check()
        assert _out(self.pl) == before

    # --- valid operations (refusals allowed, then nothing may have changed) -------------

    @rule(data=st.data(), op=st.sampled_from(["replace", "prepend", "append"]), retarget=st.booleans())
    def patch_one(self, data, op, retarget) -> None:
        node = self.live(data)
        if node is None:
            return
        buf = patch_buffers(data.draw, [n for n in self.nodes if not n.deleted and n != node])
        before = _out(self.pl) if data.draw(st.integers(0, 4)) == 0 else None
        try:
            if op == "replace":
                self.pl.replace(node, buf, retarget=retarget)
            elif op == "prepend":
                self.pl.prepend(node, buf, retarget=retarget)
            else:
                self.pl.append(node, buf)
        except PatchError:  # e.g. a buffer jump past the end: refused, list untouched
            if before is not None:
                assert _out(self.pl) == before
            return
        # The reference's buffer names targets by key.
        rbuf = [PatchInsn(it.insn, target=_Key(self.key[it.target.id]), aux=it.aux)
                if isinstance(it, PatchInsn) and it.target is not None else it for it in buf]
        k = self.key[node.id]
        if op == "replace":
            self.ref.replace(k, rbuf, retarget=retarget)
        elif op == "prepend":
            self.ref.prepend(k, rbuf, retarget=retarget)
        else:
            self.ref.append(k, rbuf)
        self.refresh()

    @rule(data=st.data())
    def replace_many(self, data) -> None:
        """One patch of the pool at several nodes, without looking at the list in between."""
        patch = data.draw(st.sampled_from(self.pool))
        for _ in range(data.draw(st.integers(1, 8))):
            node = self.live(data)
            fresh = list(patch) if data.draw(st.booleans()) else patch  # an equal new list, or the same object
            try:
                self.pl.replace(node, fresh)
            except PatchError:
                continue  # a jump past the end at the last node
            self.ref.replace(self.key[node.id], list(patch), retarget=True)
            if data.draw(st.integers(0, 5)) == 0:
                node.next  # a look at the list in between settles the deferred replaces
        self.refresh()

    @rule(data=st.data())
    def patch_many(self, data) -> None:
        """Patches of the pool replaced, prepended and appended at several nodes without looking at the
        list in between (deferred, each site once); the node each insert returns is its last new node."""
        made = []  # (the returned node, the reference's key of the same instruction)
        ops = ["replace", "prepend", "append", "prepend", "append"]
        one_patch, one_op = data.draw(st.sampled_from(self.pool + [None])), data.draw(st.sampled_from(ops + [None]))
        for _ in range(data.draw(st.integers(1, 8))):
            patch = one_patch or data.draw(st.sampled_from(self.pool))
            op = one_op or data.draw(st.sampled_from(ops))
            if made and data.draw(st.integers(0, 3)) == 0:
                node, k = data.draw(st.sampled_from(made))  # patch at a node an insert made (settles first)
            else:
                node = self.live(data)
                k = self.key[node.id]
            fresh = list(patch) if data.draw(st.booleans()) else patch  # an equal new list, or the same object
            try:
                new = getattr(self.pl, op)(node, fresh)
            except PatchError:
                continue  # a jump past the end at the last node
            getattr(self.ref, op)(k, list(patch))
            if op != "replace":
                made.append((new, self.ref.next_key - 1))  # the reference's last new instruction
                if data.draw(st.integers(0, 5)) == 0:
                    item = patch[-1]
                    assert new.insn == (item.insn if isinstance(item, PatchInsn) else item)  # links it
            if data.draw(st.integers(0, 7)) == 0:
                node.next  # a look at the list in between settles the deferred operations
        if data.draw(st.booleans()):  # laid out while still deferred (blocks), then settled by the refresh
            assert _out(self.pl) == _out(self.ref)
            self.pl.check()
        self.refresh()
        for new, k in made:
            assert self.key[new.id] == k, "an insert returned another node than its last new one"

    @rule(data=st.data())
    def replace_rows(self, data) -> None:
        nodes = [n for n in self.nodes if not n.deleted and n.insn.code != 0x18]
        if not nodes:
            return
        chosen = data.draw(st.lists(st.sampled_from(nodes), unique_by=lambda n: n.id, min_size=1, max_size=6))
        template = [Row(0x07, dst=S.dst, imm=3), Row(0xB7, dst=4, imm=4), SITE][data.draw(st.integers(0, 1)):]
        own = [n.insn for n in chosen]  # SITE: the site keeps its instruction and its jump target
        ids = np.array([n.id for n in chosen])
        self.pl.replace_rows(ids if data.draw(st.booleans()) else chosen, template)
        for n, insn in zip(chosen, own):  # what replace_rows means: replace at every site, in the order given
            rows = [Insn(0x07, insn.dst, 0, 0, 3), Insn(0xB7, 4, 0, 0, 4)][3 - len(template):]
            k = self.key[n.id]
            target = self.ref_target(k)
            self.ref.replace(k, rows + [PatchInsn(insn, target=target) if target else insn], retarget=True)
        self.refresh()

    def ref_target(self, key: int):
        """Where the reference's instruction `key` jumps now, as a key (None: it has no target)."""
        i = self.ref.index_of(key)
        s = self.ref.slots[i]
        if s.field is None:
            return None
        return _Key(self.ref.slots[i + s.rel() + 1].key)

    @rule(data=st.data())
    def delete(self, data) -> None:
        node = self.live(data)
        if node is None:
            return
        before = _out(self.pl)
        try:
            self.pl.delete(node)
        except PatchError:
            assert _out(self.pl) == before  # refused (last insn, called subprogram, a stranded jump)
            return
        self.ref.delete(self.key[node.id])
        self.gone.append(node)
        self.refresh()

    @rule(data=st.data())
    def look(self, data) -> None:
        """Read the list the ways passes do (every one settles the deferred replaces)."""
        ids = self.pl.live_ids()
        assert ids.tolist() == [n.id for n in self.pl]
        targets = self.pl.target_ids(ids).tolist()
        assert targets == [n.target.id if n.target is not None else -1 for n in self.pl]

    # --- invalid operations: refused at the call, list untouched --------------------------

    @rule(data=st.data(), bad=st.sampled_from(BAD_INSNS), op=st.sampled_from(["replace", "prepend", "append"]))
    def bad_insn(self, data, bad, op) -> None:
        node = self.live(data)
        if node is None:
            return
        buf = [Insn(0xB7, 1, 0, 0, 1), bad] if data.draw(st.booleans()) else [bad]
        self.refused(lambda: getattr(self.pl, op)(node, buf))

    @rule(data=st.data())
    def bad_nodes(self, data) -> None:
        node = self.live(data)
        if node is None:
            return
        foreign = data.draw(st.sampled_from(list(self.other)))
        gone = self.gone
        patch = data.draw(st.sampled_from(self.pool))
        self.refused(lambda: self.pl.replace(foreign, patch))
        self.refused(lambda: self.pl.delete(foreign))
        self.refused(lambda: self.pl.replace_rows([foreign], [Row(0xB7, dst=1), SITE]))
        self.refused(lambda: self.pl.replace(node, [PatchInsn(Insn(0x05), target=foreign)]))
        self.refused(lambda: self.pl.replace(self.pl.head, patch))
        self.refused(lambda: self.pl.delete(self.pl.head))
        self.refused(lambda: self.pl.replace(node, []))
        self.refused(lambda: self.pl.replace(node, [Insn(0x05, 0, 0, 5)]))  # leaves the buffer
        self.refused(lambda: self.pl.replace(node, 42))
        self.refused(lambda: self.pl.replace_rows([node, node], [Row(0xB7, dst=1), SITE]))
        if gone:
            self.refused(lambda: self.pl.replace(gone[0], patch))
            self.refused(lambda: self.pl.delete(gone[0]))

    @precondition(lambda self: len([n for n in self.nodes if not n.deleted]) >= 1)
    @rule()
    def strand_a_jump(self) -> None:
        """Deleting the last live node while a jump lands on it would leave the jump nowhere to go."""
        last = [n for n in self.nodes if not n.deleted][-1]
        if any(n.target == last for n in self.nodes if not n.deleted and n != last):
            self.refused(lambda: self.pl.delete(last))

    # --- after every step -----------------------------------------------------------------

    @invariant()
    def same_as_reference(self) -> None:
        if not hasattr(self, "pl"):
            return
        self.pl.check()
        assert _out(self.pl) == _out(self.ref)
        self.pl.check()  # laying out (blocks) left the fast paths consistent too


class _Key:
    """A reference-side target: `ReferencePatcher` reads ``target._id`` as the node's key."""

    def __init__(self, key: int) -> None:
        self._id = key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Key) and other._id == self._id

    __hash__ = None  # type: ignore[assignment]


def _machine(fast: FastPaths):
    machine = type(f"Machine_{fast}", (PatchListMachine,), {"FAST": fast})
    machine.TestCase.settings = settings(max_examples=int(os.environ.get("BPFPATCH_MACHINE_EXAMPLES", 25)), stateful_step_count=20, deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    return machine.TestCase


@pytest.mark.parametrize("fast", FastPaths.every_combination(group_min=0) + [FastPaths()], ids=str)
def test_every_fast_path_combination_matches_the_reference(fast):
    _machine(fast)("runTest").runTest()
