"""The runs in which the recorder saves ended calls together."""

from types import SimpleNamespace

from callscope.ingest.pipeline import conversation_groups


def leg(call_id, conversation_id, started_at=1):
    return SimpleNamespace(call_id=call_id, conversation_id=conversation_id, started_at=started_at)


def names(groups):
    return [[record.call_id for record in group] for group in groups]


def test_legs_of_one_conversation_are_never_saved_in_the_same_run():
    records = [leg("a", "c1"), leg("b", "c2"), leg("c", "c1"), leg("d", "c3"), leg("e", "c2")]
    assert names(conversation_groups(records)) == [["a", "b"], ["c", "d", "e"]]


def test_the_same_leg_ending_twice_starts_a_new_run_and_order_is_kept():
    records = [leg("a", "a"), leg("a", "a"), leg("b", "b", 2)]
    assert names(conversation_groups(records)) == [["a"], ["a", "b"]]
    assert conversation_groups([]) == []
