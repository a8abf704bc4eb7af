"""The verifier's facts about one instruction: the aux data of the verification layer.

The kernel keeps one ``struct bpf_insn_aux_data`` per instruction
(include/linux/bpf_verifier.h); the passes of ``bpf_check`` after ``do_check``
are driven by it.  `InsnAux` is our analogue.  An analysis of a program returns
one `InsnAux` per slot (``None`` for the second slot of an ld_imm64); on a
`PatchList` the nodes hold them *by reference* as their aux data, so later
passes read them and instructions a pass inserts get fresh aux (``None``: "no
facts", the seed's rule).

This module is the contract between the analysis that computes the facts
(`bpfpatch.analysis.verifier`) and the passes that consume them
(`bpfpatch.passes.kernel` and the standalone passes).  Fields may be added;
none is renamed or changes meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class RegType(Enum):
    """``enum bpf_reg_type`` (include/linux/bpf.h), the kinds a register or stack slot can hold.

    ``*_OR_NULL`` kinds are the kernel's ``PTR_MAYBE_NULL`` flag folded in.
    """

    NOT_INIT = "not_init"
    SCALAR = "scalar"
    PTR_TO_CTX = "ctx"
    CONST_PTR_TO_MAP = "map_ptr"
    PTR_TO_MAP_VALUE = "map_value"
    PTR_TO_MAP_VALUE_OR_NULL = "map_value_or_null"
    PTR_TO_MAP_KEY = "map_key"
    PTR_TO_STACK = "fp"
    PTR_TO_PACKET_META = "pkt_meta"
    PTR_TO_PACKET = "pkt"
    PTR_TO_PACKET_END = "pkt_end"
    PTR_TO_FLOW_KEYS = "flow_keys"
    PTR_TO_SOCKET = "sock"
    PTR_TO_SOCKET_OR_NULL = "sock_or_null"
    PTR_TO_SOCK_COMMON = "sock_common"
    PTR_TO_SOCK_COMMON_OR_NULL = "sock_common_or_null"
    PTR_TO_TCP_SOCK = "tcp_sock"
    PTR_TO_TCP_SOCK_OR_NULL = "tcp_sock_or_null"
    PTR_TO_XDP_SOCK = "xdp_sock"
    PTR_TO_TP_BUFFER = "tp_buffer"
    PTR_TO_BTF_ID = "ptr_"
    PTR_TO_BTF_ID_OR_NULL = "ptr_or_null_"
    PTR_TO_MEM = "mem"
    PTR_TO_MEM_OR_NULL = "mem_or_null"
    PTR_TO_BUF = "buf"
    PTR_TO_BUF_OR_NULL = "buf_or_null"
    PTR_TO_FUNC = "func"
    PTR_TO_ARENA = "arena"

    @property
    def is_pointer(self) -> bool:
        """Every kind but NOT_INIT and SCALAR."""
        return self not in (RegType.NOT_INIT, RegType.SCALAR)


@dataclass(frozen=True, slots=True)
class MapRef:
    """A map an instruction refers to: by its index in the program's map list and, when known, its fd.

    ``map_type`` is ``enum bpf_map_type``'s number when the analysis was told it
    (needed by passes that inline lookups of array maps).  ``map_flags`` is
    its BPF_MAP_CREATE flags when known (the kernel inlines no lookup of an
    array created with BPF_F_INNER_MAP).  ``frozen_value`` is the value of a
    frozen read-only array's one element (libbpf's ``.rodata``): the verifier
    reads constant-offset loads from it as known scalars.  ``kptr_fields`` are the
    value's ``__kptr`` / ``__kptr_untrusted`` / ``__percpu_kptr`` fields from its BTF,
    as ``(offset, kind, struct name)`` with kind "ref", "untrusted" or "percpu": a
    load from one gives a maybe-NULL pointer to that struct.  ``inner`` is, for an array or hash of
    maps, its inner map's template (``inner_map_meta``: what a lookup in the inner map inlines).
    ``graph_roots`` are the value's ``bpf_list_head`` / ``bpf_rb_root`` fields as ``(offset, contained struct,
    node offset)`` (their ``__contains`` tags): a node taken from one points into that struct at the node's offset.
    """

    index: int
    name: str = ""
    fd: int | None = None
    map_type: int | None = None
    key_size: int | None = None
    value_size: int | None = None
    max_entries: int | None = None
    map_flags: int | None = None
    frozen_value: bytes | None = None
    kptr_fields: tuple[tuple[int, str, str], ...] = ()
    inner: "MapRef | None" = None
    graph_roots: tuple[tuple[int, str, int], ...] = ()


class PackedState:
    """A kept state in a packed form (the analysis's own, e.g. `bpfpatch.analysis.state.KeptState`): `InsnAux`
    holds it as it is and gives ``unpack()``, the state itself, when its ``states`` or ``extra`` is read.
    A subclass gives its own ``__slots__`` (a kept state an instruction: a few slots, not a tuple's header)."""

    __slots__ = ()

    def unpack(self) -> Any:
        """The state this record stands for."""
        raise NotImplementedError


class _Kept(list):
    """The states `InsnAux.keep_state` / `keep_after` held, some maybe packed: unpacked when read."""

    __slots__ = ()


def keep(held: Any, state: Any) -> Any:
    """What holds the states `held` and then `state`: `state` alone after none (`held` None), else the list of
    them (a list `keep` made grows).  `InsnAux.keep_state` holds its states so; a walk holding them in a column
    of its own gives that column's entry to `InsnAux.walked` (one rule for both)."""
    if held is None:
        return state
    if held.__class__ is _Kept:
        held.append(state)
        return held
    return _Kept((held, state))


def _held(held: Any) -> "tuple[Any, ...] | list[Any]":
    """The states `held` (None, one state or a `_Kept` list) holds, as they are held."""
    if held is None:
        return ()
    return held if held.__class__ is _Kept else (held,)


def _unpacked(held: Any) -> list[Any]:
    """The list of states `held` (None, one state or a `_Kept` list) stands for, every `PackedState` unpacked."""
    return [s.unpack() if isinstance(s, PackedState) else s for s in _held(held)]


#: `InsnAux`'s flags: ``seen`` and ``zext_dst`` in bits 0 and 1, ``ptr_type`` above them as its number here.
_SEEN, _ZEXT, _FLAG_BITS, _PTR_SHIFT = 1, 2, 3, 2
_PTR_TYPES: tuple[RegType | None, ...] = (None, *RegType)
_PTR_NUMBER: dict[RegType | None, int] = {t: k for k, t in enumerate(_PTR_TYPES)}


class InsnAux:
    """What the verifier records about one instruction (``struct bpf_insn_aux_data``).

    * ``seen`` -- some verified path reaches the instruction (the dead-code passes remove the rest);
    * ``ptr_type`` -- for a load/store/atomic: the kind of its base pointer (the kernel's
      ``aux->ptr_type``; ``convert_ctx_accesses`` rewrites the PTR_TO_CTX ones);
    * ``ctx_field_size`` -- for a context access: the size of the field it reads (narrow loads);
    * ``zext_dst`` -- the instruction defines a 32-bit subregister whose upper half is read later
      (``opt_subreg_zext_lo32_rnd_hi32`` zero-extends exactly these);
    * ``map`` -- for an ld_imm64 map reference or a helper call taking a map: that map
      (``aux->map_ptr_state``);
    * ``call_helper`` -- for a helper call: its id (as written in the program);
    * ``loop_callback`` -- for a ``bpf_loop`` call: the slot of its callback's first instruction when
      every path passed that same callback and flags a known 0 (``loop_inline_state.fit_for_inline``:
      ``optimize_bpf_loop`` inlines the call), -1 when some path did not, None when no path reached it;
    * ``insert_off`` -- for a kfunc call adding a node to a list or rbtree: the node argument's (R2)
      fixed offset (``insn_aux->insert_off``, which ``fixup_kfunc_call`` passes in R4 / R5);
    * ``local_type_id`` -- for ``bpf_obj_new_impl`` / ``bpf_percpu_obj_new_impl``: R1, the program-BTF
      id of the type allocated (``fixup_kfunc_call`` passes its size);
    * ``states`` -- the abstract states (before the instruction) the analysis processed here, in
      order; their type is the analysis's own (see `bpfpatch.analysis.verifier`);
    * ``extra`` -- anything else a pass wants to carry by reference.

    ``seen``, ``zext_dst`` and ``ptr_type`` are one small int of the instruction's own (two flag bits and
    the kind's number, `_PTR_TYPES`: a small int is a shared object); the
    fields few instructions have (``ctx_field_size``, ``map``, ``call_helper``,
    ``loop_callback``, ``insert_off``, ``local_type_id``) live in one dict made
    on the first write of any (None reads as None), and ``states`` and
    ``extra`` are a list and a dict made on first use: an instruction's aux
    costs one object of four slots (64 bytes; eleven slots and a list and a dict
    each were most of an analysis's memory, six slots 80 bytes).  States are held by the rule of `keep`: while
    there is one, it is held alone, without its list (made at the second or when ``states`` is read); the
    states after are held without their ``{"after": [...]}`` dict until ``extra`` is read.  `keep_state` /
    `keep_after` add one to an aux; the verifier's walk holds ``seen``, ``zext_dst`` and its states in columns
    of its own and makes each aux after the walk (`walked`, `take_walked`).  A kept `PackedState` is unpacked
    when ``states`` (or ``extra``) is read, the list then made of the states themselves.  Equality compares
    every field, as a dataclass's.
    """

    __slots__ = ("_flags", "_states", "_extra", "_more")

    def __init__(self, seen: bool = False, ptr_type: RegType | None = None, ctx_field_size: int | None = None,
                 zext_dst: bool = False, map: MapRef | None = None, call_helper: int | None = None,
                 states: list[Any] | None = None, extra: dict[str, Any] | None = None,
                 loop_callback: int | None = None, insert_off: int | None = None,
                 local_type_id: int | None = None) -> None:
        self._flags = (_SEEN if seen else 0) | (_ZEXT if zext_dst else 0) | _PTR_NUMBER[ptr_type] << _PTR_SHIFT
        self._states = states
        self._extra = extra
        more = {k: v for k, v in (("ctx_field_size", ctx_field_size), ("map", map), ("call_helper", call_helper),
                                  ("loop_callback", loop_callback), ("insert_off", insert_off),
                                  ("local_type_id", local_type_id)) if v is not None}
        self._more: dict[str, Any] | None = more or None

    @property
    def seen(self) -> bool:
        """Some verified path reaches the instruction."""
        return bool(self._flags & _SEEN)

    @seen.setter
    def seen(self, value: bool) -> None:
        self._flags = self._flags | _SEEN if value else self._flags & ~_SEEN

    @property
    def zext_dst(self) -> bool:
        """The instruction defines a 32-bit subregister whose upper half is read later."""
        return bool(self._flags & _ZEXT)

    @zext_dst.setter
    def zext_dst(self, value: bool) -> None:
        self._flags = self._flags | _ZEXT if value else self._flags & ~_ZEXT

    @property
    def ptr_type(self) -> RegType | None:
        """For a load/store/atomic: the kind of its base pointer, else None."""
        return _PTR_TYPES[self._flags >> _PTR_SHIFT]

    @ptr_type.setter
    def ptr_type(self, value: RegType | None) -> None:
        self._flags = self._flags & _FLAG_BITS | _PTR_NUMBER[value] << _PTR_SHIFT

    def _get(self, name: str) -> Any:
        more = self._more
        return None if more is None else more.get(name)

    def _set(self, name: str, value: Any) -> None:
        more = self._more
        if more is None:
            if value is None:
                return
            self._more = more = {}
        more[name] = value

    @property
    def ctx_field_size(self) -> int | None:
        """For a context access: the size of the field it reads (narrow loads), else None."""
        return self._get("ctx_field_size")

    @ctx_field_size.setter
    def ctx_field_size(self, value: int | None) -> None:
        self._set("ctx_field_size", value)

    @property
    def map(self) -> MapRef | None:
        """For an ld_imm64 map reference or a helper call taking a map: that map, else None."""
        return self._get("map")

    @map.setter
    def map(self, value: MapRef | None) -> None:
        self._set("map", value)

    @property
    def call_helper(self) -> int | None:
        """For a helper call: its id, else None."""
        return self._get("call_helper")

    @call_helper.setter
    def call_helper(self, value: int | None) -> None:
        self._set("call_helper", value)

    @property
    def loop_callback(self) -> int | None:
        """For a ``bpf_loop`` call: its one callback's first slot, -1 when not inlinable, None when unreached."""
        return self._get("loop_callback")

    @loop_callback.setter
    def loop_callback(self, value: int | None) -> None:
        self._set("loop_callback", value)

    @property
    def insert_off(self) -> int | None:
        """For a kfunc call adding a node to a list or rbtree: the node argument's fixed offset, else None."""
        return self._get("insert_off")

    @insert_off.setter
    def insert_off(self, value: int | None) -> None:
        self._set("insert_off", value)

    @property
    def local_type_id(self) -> int | None:
        """For ``bpf_obj_new_impl`` / ``bpf_percpu_obj_new_impl``: the program-BTF id allocated, else None."""
        return self._get("local_type_id")

    @local_type_id.setter
    def local_type_id(self, value: int | None) -> None:
        self._set("local_type_id", value)

    @property
    def states(self) -> list[Any]:
        """The abstract states processed before the instruction (an empty list until the first)."""
        st = self._states
        if st.__class__ is not list:
            st = self._states = _unpacked(st)
        return st

    def keep_state(self, state: Any) -> None:
        """``states.append(state)``, without a list while there is one state (`keep`); a `PackedState` stays
        packed until ``states`` is read."""
        st = self._states
        if st.__class__ is list:  # read already: unpacked from now on
            st.append(state.unpack() if isinstance(state, PackedState) else state)
        else:
            self._states = keep(st, state)

    def keep_after(self, state: Any) -> None:
        """``extra.setdefault("after", []).append(state)``, without a dict or list while it is the only one (a
        `PackedState` stays packed until ``extra`` is read)."""
        ex = self._extra
        if ex.__class__ is dict:
            ex.setdefault("after", []).append(state.unpack() if isinstance(state, PackedState) else state)
        else:
            self._extra = keep(ex, state)  # the "after" list alone, its dict made when `extra` is read

    @classmethod
    def walked(cls, seen: bool, zext_dst: bool, states: Any = None, after: Any = None) -> "InsnAux":
        """A new aux with only ``seen``, ``zext_dst`` and the states a walk held (`keep`) before and after the
        instruction: what an analysis that kept its facts in columns while it walked makes for each
        instruction that needed no other fact.  Equal to ``InsnAux(seen=seen, zext_dst=zext_dst)`` given each
        state by `keep_state` and `keep_after`, without the calls."""
        a = cls.__new__(cls)
        a._flags = (_SEEN if seen else 0) | (_ZEXT if zext_dst else 0)
        a._states = states
        a._extra = after
        a._more = None
        return a

    def take_walked(self, seen: bool, zext_dst: bool, states: Any = None, after: Any = None) -> None:
        """Add what `walked` would have made to this aux (made during the walk for a fact of another kind):
        ``seen`` and ``zext_dst`` when true, the states held before and after the instruction behind any it
        keeps already."""
        if seen:
            self.seen = True
        if zext_dst:
            self.zext_dst = True
        for s in _held(states):
            self.keep_state(s)
        for s in _held(after):
            self.keep_after(s)

    @states.setter
    def states(self, value: list[Any]) -> None:
        self._states = value

    @property
    def extra(self) -> dict[str, Any]:
        """Anything else carried by reference (an empty dict until the first key)."""
        ex = self._extra
        if ex.__class__ is not dict:
            # nothing yet, or what `keep_after` held without the dict: a state alone, or the list of them
            ex = self._extra = {} if ex is None else {"after": _unpacked(ex)}
        return ex

    @extra.setter
    def extra(self, value: dict[str, Any]) -> None:
        self._extra = value

    @property
    def stack_depth(self) -> int:
        """On a subprogram's first instruction: its stack depth as the verifier computed it (the kernel's
        ``subprog_info[].stack_depth``: the deepest byte a verified path touched below the frame pointer,
        rounded up to 8; kept in ``extra["stack_depth"]``), else 0."""
        return int(self.extra_get("stack_depth", 0))

    def extra_get(self, key: str, default: Any = None) -> Any:
        """``extra.get(key, default)`` without making the dict (a reader need not cost a dict an instruction)."""
        extra = self._extra
        if extra is None:
            return default
        if extra.__class__ is not dict:
            extra = self.extra
        return extra.get(key, default)

    def _fields(self) -> tuple:
        return (self.seen, self.ptr_type, self.ctx_field_size, self.zext_dst, self.map, self.call_helper,
                self.states, self.extra, self.loop_callback, self.insert_off, self.local_type_id)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass it was

    def __repr__(self) -> str:
        return (f"InsnAux(seen={self.seen!r}, ptr_type={self.ptr_type!r}, ctx_field_size={self.ctx_field_size!r}, "
                f"zext_dst={self.zext_dst!r}, map={self.map!r}, call_helper={self.call_helper!r}, "
                f"states={self.states!r}, extra={self.extra!r}, "
                f"loop_callback={self.loop_callback!r}, insert_off={self.insert_off!r}, "
                f"local_type_id={self.local_type_id!r})")


__all__ = ["InsnAux", "MapRef", "PackedState", "RegType", "keep"]
