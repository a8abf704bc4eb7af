"""`bpfpatch.analysis.scc` (the loops of an instruction graph against mutual reachability, and their visits) and
`bpfpatch.analysis.livestack` (6.18's live stack slots: writes joined by intersection, a callee's reads in its caller)."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from bpfpatch.analysis.scc import SccVisits, scc_ids


def _reach(n: int, succ: list[list[int]]) -> list[set[int]]:
    out = []
    for v in range(n):
        seen, todo = set(), list(succ[v])
        while todo:
            w = todo.pop()
            if w not in seen:
                seen.add(w)
                todo.extend(succ[w])
        out.append(seen)
    return out


graphs = st.integers(1, 14).flatmap(
    lambda n: st.lists(st.lists(st.integers(0, n - 1), max_size=2), min_size=n, max_size=n))


@settings(max_examples=300, deadline=None)
@given(graphs)
def test_scc_ids_are_mutual_reachability(succ):
    n = len(succ)
    ids = scc_ids(n, lambda i: succ[i])
    reach = _reach(n, succ)
    for v in range(n):
        # in a loop exactly when v reaches itself (two or more members, or a jump to itself)
        assert (ids[v] != 0) == (v in reach[v])
        for w in range(n):
            if ids[v] and ids[w]:
                assert (ids[v] == ids[w]) == (w in reach[v] and v in reach[w])


def test_scc_ids_of_a_long_chain_do_not_recurse():
    n = 50_000
    ids = scc_ids(n, lambda i: [i + 1] if i + 1 < n else [0])
    assert set(ids) == {1}


def _frames(*callsites: int) -> list:
    return [SimpleNamespace(callsite=-1)] + [SimpleNamespace(callsite=c) for c in callsites]


def test_callchain_names_the_first_frame_in_a_loop():
    # 0..2: main, calls 10 at 1 (no loop in main); 10..12: a loop 11 <-> 12 with a call at 11
    ids = [0] * 20
    ids[11] = ids[12] = 1
    v = SccVisits(ids)
    assert v.callchain(2, _frames()) is None
    assert v.callchain(12, _frames(1)) == (1, 1)  # main stands at its call 1, the callee in loop 1
    assert v.callchain(15, _frames(1, 11)) == (1, 1)  # the callee stands at its call 11, inside loop 1


def test_visit_has_backedges_until_its_entry_exits():
    ids = [0, 1, 1, 0]
    v = SccVisits(ids)
    entry, other, cur = (SimpleNamespace(frames=_frames()) for _ in range(3))
    v.enter(1, entry)
    v.enter(2, other)  # the visit has its entry already
    assert not v.incomplete(2, other)
    v.add_backedge(1, entry, cur)
    assert v.incomplete(2, other) and v.incomplete(1, entry)
    assert v.exit(other) is None
    visit = v.exit(entry)
    assert visit is not None and visit.backedges == [(cur, entry)]
    assert not v.incomplete(2, other)


def _main() -> list:
    return [SimpleNamespace(callsite=-1, subprog=0)]


def test_live_stack_writes_join_by_intersection():
    from bpfpatch.analysis.livestack import LiveStack, Successors

    # 0: *(u64 *)(r10 - 8) = r1 (slot 0, on one visit only); 1: r2 = *(u64 *)(r10 - 8); 2: exit
    ls = LiveStack(3, [0], Successors.of([(1,), (2,), ()]))
    frames = _main()
    ls.begin(0)
    ls.write(0, 1 << 0)
    ls.commit(frames)
    ls.read(frames, 1, 0, 1 << 0)
    ls.update(frames)
    assert ls.alive(frames, 1, 0, 0) and not ls.alive(frames, 0, 0, 0)  # written whole before the read
    ls.begin(0)  # a second visit of 0 that does not write the slot
    ls.commit(frames)
    ls.update(frames)
    assert ls.alive(frames, 0, 0, 0)
    assert not ls.alive(frames, 0, 0, 1)  # nothing reads slot 1


def test_live_stack_solves_no_instance_without_marks():
    from bpfpatch.analysis.livestack import LiveStack, Successors

    # main: 0: call 2; 1: exit.  sub (2..3): 2: r0 = 1; 3: exit -- nothing touches the stack
    ls = LiveStack(4, [0, 2], Successors.of([(1,), (), (3,), ()]))
    main = SimpleNamespace(callsite=-1, subprog=0)
    ls.update([main, SimpleNamespace(callsite=0, subprog=2)])
    ls.update([main])
    assert ls.instances == {}  # an instance is made at its first mark (thousands of subprograms: none each)
    assert not ls.alive([main], 1, 0, 0)
    ls.read([main], 1, 0, 1 << 3)
    assert list(ls.instances) == [(0,)] and ls.instances[(0,)].end == 2


def test_live_stack_callee_reads_are_live_after_the_call_in_the_caller():
    from bpfpatch.analysis.livestack import LiveStack, Successors

    # main: 0: call 3; 1: call 3; 2: exit.  sub (3..4): 3: r0 = *(u64 *)(r1 + 0) (main's slot 2); 4: exit
    ls = LiveStack(5, [0, 3], Successors.of([(1,), (2,), (), (4,), ()]))
    main = SimpleNamespace(callsite=-1, subprog=0)
    callee = [main, SimpleNamespace(callsite=1, subprog=3)]
    ls.read(callee, 3, 0, 1 << 2)
    ls.update(callee)
    assert ls.alive([main], 1, 0, 2)  # before the second call, which reads it
    assert not ls.alive([main], 2, 0, 2)
    first = [main, SimpleNamespace(callsite=0, subprog=3)]
    assert ls.alive(first, 3, 0, 2)  # inside the first call: main's slot is read after it returns
