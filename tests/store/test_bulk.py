"""insert_new: the rows bulk_create writes, the keys set, plain new objects only."""

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import F
from django.db.models.signals import post_init
from django.utils import timezone

from callscope.store.bulk import insert_new, new_instance, plan_for
from callscope.store.models import Call, Recording, Stream

START = dt.datetime(2026, 4, 1, 0, 15, 2, 123456, tzinfo=dt.UTC)


def call(index: int, suffix: str) -> Call:
    return Call(
        call_id=f"{index}-{suffix}@pbx.example",
        conversation_id=f"{index}@pbx.example",
        source="hep",
        caller_number="0781234567",
        caller_display="神戸 太郎" if index % 2 else "",
        started_at=START + dt.timedelta(seconds=index),
        answered_at=None if index % 3 else START + dt.timedelta(seconds=index, microseconds=7),
        result="answered",
        final_code=200 if index % 3 == 0 else None,
        talk_seconds=index / 7,
        early_media=bool(index % 2),
        record={"call_id": f"{index}", "nested": [1, None, {"ü": 2.5}]},
        ladder=[{"label": "INVITE", "at": "2026-04-01T00:15:02.123456Z"}],
    )


def rows(model, ids):
    found = list(model.objects.filter(id__in=ids).order_by("id").values())
    for row in found:
        for name in ("id", "imported_at", "created_at", "call_id"):
            row.pop(name, None)
    return found


@pytest.mark.django_db
def test_the_same_rows_as_bulk_create_across_batches():
    made, inserted = [call(i, "a") for i in range(70)], [call(i, "b") for i in range(70)]
    before = timezone.now()
    Call.objects.bulk_create(made)
    insert_new(inserted)
    assert all(c.pk is not None and not c._state.adding for c in inserted)
    assert len({c.pk for c in inserted}) == 70
    assert rows(Call, [c.pk for c in made]) == rows(Call, [c.pk for c in inserted])
    for obj in inserted:
        stored = Call.objects.get(pk=obj.pk)
        assert stored.call_id == obj.call_id and stored.imported_at == obj.imported_at
        assert stored.imported_at >= before  # auto_now_add stamped, on the object too


@pytest.mark.django_db
def test_related_rows_take_the_new_keys():
    parent = call(1, "p")
    insert_new([parent])
    streams = [
        Stream(call=parent, direction="caller_to_callee", src="192.0.2.1:4000",
               dst="192.0.2.2:5000", ssrcs=[1, 2], first_at=START, jitter_ms=1.5),
        Stream(call=parent, direction="callee_to_caller", src="192.0.2.2:5000",
               dst="192.0.2.1:4000"),
    ]  # fmt: skip
    insert_new(streams)
    recording = Recording(call=parent, state=Recording.State.DONE, payload_types={"a": [1]})
    insert_new([recording])
    assert [s.direction for s in parent.streams.order_by("id")] == [
        "caller_to_callee",
        "callee_to_caller",
    ]
    stored = Recording.objects.get(call=parent)
    assert stored.pk == recording.pk and stored.payload_types == {"a": [1]}
    assert stored.wrapped_key is None and stored.created_at == recording.created_at


@pytest.mark.django_db
def test_objects_with_a_key_go_to_bulk_create_and_expressions_are_refused():
    first = call(1, "k")
    insert_new([first])
    again = call(2, "k")
    again.pk = first.pk + 1000
    insert_new([again])
    assert Call.objects.filter(pk=first.pk + 1000).exists()
    odd = call(3, "k")
    odd.final_code = F("final_code")  # type: ignore[assignment]
    with pytest.raises(TypeError):
        insert_new([odd])
    insert_new([])


@pytest.mark.django_db
def test_a_related_object_saved_after_its_assignment_gives_its_key():
    parent = call(1, "late")
    stream = Stream(call=parent, direction="caller_to_callee", src="a", dst="b")
    with pytest.raises(ValueError, match="unsaved related object"):
        insert_new([stream])
    insert_new([parent])
    insert_new([stream])
    assert Stream.objects.get(pk=stream.pk).call_id == parent.pk


JST = dt.timezone(dt.timedelta(hours=9))
SAMPLES = [
    None, "", "神戸", "x" * 300, 0, 1, -5, 2**40, True, False, 0.0, 1.5, -2.25,
    START, START.astimezone(JST), dt.datetime(2026, 4, 1, 9, 0), dt.date(2026, 4, 1),
    START.replace(microsecond=0), START.replace(tzinfo=ZoneInfo("UTC")),
    {}, [], {"ü": [1, None, {"a": 2.5}]}, [1, "二"], b"\x00\x01", memoryview(b"ab"),
]  # fmt: skip


def same_param(a, b):
    """Parameters equal as the database sees them: the same value, JSON as the same JSON
    value (insert_new writes it without blanks; psycopg's Jsonb has no equality)."""
    if hasattr(a, "obj") and hasattr(b, "obj"):
        return type(a) is type(b) and (a.obj == b.obj or as_json(a.obj) == b.obj)
    if isinstance(a, str) and isinstance(b, str) and a != b:
        try:
            return json.loads(a) == json.loads(b) and isinstance(json.loads(a), dict | list)
        except ValueError:
            return False
    return type(a) is type(b) and a == b


def as_json(value):
    """A dict or list insert_new dumped already (as bytes) as its value again."""
    try:
        return json.loads(value) if isinstance(value, bytes) else value
    except ValueError:
        return value


@pytest.mark.django_db
@pytest.mark.parametrize(
    "value",
    [{1: "a"}, {"big": 2**70}, {"t": (1, 2)}, {"神戸": ["二", -0.5, None, True]}, [{"a": {}}]],
)
def test_json_values_come_back_as_the_orm_reads_them(value):
    """Values orjson refuses (keys that are not text, integers beyond 64 bits) go through
    json.dumps; every JSON column reads back as what the ORM's own save stores."""
    made, inserted = call(1, "ja"), call(1, "jb")
    made.record = inserted.record = value
    made.save()
    insert_new([inserted])
    assert Call.objects.get(pk=inserted.pk).record == Call.objects.get(pk=made.pk).record


@pytest.mark.django_db
@pytest.mark.filterwarnings("ignore:DateTimeField .* received a naive datetime")
@pytest.mark.parametrize("model", [Call, Stream, Recording])
def test_every_value_is_prepared_as_get_db_prep_save_prepares_it(model):
    """What insert_new keeps as it is, and what it hands to the backend's adapter directly,
    is what the field's own get_db_prep_save gives, on this database."""
    plan = plan_for(model)
    assert plan is not None
    checked = 0
    for field, step in zip(plan.fields, plan.steps, strict=True):
        for value in SAMPLES:
            try:
                expected = field.get_db_prep_save(value, connection)
            except (TypeError, ValueError, ValidationError):
                continue  # not a value of this field: the database would refuse it anyway
            got = value if type(value) in step.kept else step.prepare(value)
            assert same_param(got, expected), (field.name, value)
            checked += 1
    assert checked > len(plan.fields)


def test_new_instance_is_the_object_the_keyword_constructor_makes():
    values = {"call_id": "a@b", "started_at": START, "caller_unit_id": None, "record": {"x": 1},
              "talk_seconds": 1.5, "result": "answered", "source": "hep"}  # fmt: skip
    made, built = Call(**values), new_instance(Call, values)
    names = [f.attname for f in Call._meta.concrete_fields]
    assert [getattr(built, n) for n in names] == [getattr(made, n) for n in names]
    assert built._state.adding and built.pk is None
    assert new_instance(Call, {}).ladder == [] and new_instance(Call, {}).ladder is not None
    with pytest.raises(TypeError, match="caller_unit"):
        new_instance(Call, {"caller_unit": None})


def test_new_instance_has_the_state_the_constructor_gives():
    values = {"call_id": "a@b", "started_at": START, "caller_unit_id": 7, "record": {"x": 1}}
    made, built = Call(**values), new_instance(Call, values)
    assert {k: v for k, v in built.__dict__.items() if k != "_state"} == {
        k: v for k, v in made.__dict__.items() if k != "_state"
    }
    assert (built._state.adding, built._state.db) == (made._state.adding, made._state.db)
    assert built.caller_unit_id == 7 and built.pk is None and built._state.adding


def test_new_instance_with_an_init_receiver_goes_through_the_constructor():
    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance)

    post_init.connect(receiver, sender=Stream)
    try:
        stream = new_instance(Stream, {"direction": "caller_to_callee", "src": "a", "dst": "b"})
    finally:
        post_init.disconnect(receiver, sender=Stream)
    assert seen == [stream]
