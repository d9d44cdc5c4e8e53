"""quick_init: the same instances, signature and errors as the dataclass __init__, still frozen."""

import dataclasses
import inspect
import sys
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callscope.assembly.records import CallRecord, LadderEntry, Party, StreamRecord
from callscope.core.compiled import compiled_module
from callscope.core.frozen import _quick_init, quick_init
from callscope.protocol.sdp import MediaDescription, SessionDescription
from callscope.protocol.sip import SipMessage
from callscope.protocol.sipheaders import ContentType, Via
from callscope.protocol.sipuri import NameAddr, SipUri


@dataclass(frozen=True, slots=True)
class Plain:
    a: int
    b: str | None
    c: int = 7
    d: list[int] = field(default_factory=list)
    e: tuple[int, ...] = ()


@quick_init
@dataclass(frozen=True, slots=True)
class Quick:
    a: int
    b: str | None
    c: int = 7
    d: list[int] = field(default_factory=list)
    e: tuple[int, ...] = ()


def values(obj: object) -> tuple[object, ...]:
    return tuple(getattr(obj, f.name) for f in dataclasses.fields(obj))  # type: ignore[arg-type]


arguments = st.fixed_dictionaries(
    {"a": st.integers(), "b": st.none() | st.text(max_size=5)},
    optional={
        "c": st.integers(),
        "d": st.lists(st.integers(), max_size=3),
        "e": st.tuples(st.integers()),
    },
)


@given(arguments, st.integers(min_value=0, max_value=5))
def test_same_instance_as_the_dataclass_init(kwargs, positional):
    names = [f.name for f in dataclasses.fields(Plain) if f.name in kwargs]
    args = [kwargs[n] for n in names[:positional]]
    rest = {n: kwargs[n] for n in names[positional:]}
    quick, plain = Quick(*args, **rest), Plain(*args, **rest)
    assert values(quick) == values(plain)
    assert repr(quick).removeprefix("Quick") == repr(plain).removeprefix("Plain")


def test_factories_give_a_new_object_each_time_and_defaults_apply():
    first, second = Quick(1, None), Quick(1, None)
    assert first.d == [] and first.d is not second.d
    assert (first.c, first.e) == (7, ())
    assert Quick(1, "x") == Quick(a=1, b="x", c=7, d=[], e=())
    assert hash(Quick(1, "x", 2, None, (3,))) == hash(Quick(1, "x", 2, None, (3,)))  # type: ignore[arg-type]


def test_still_frozen_and_the_same_signature():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Quick(1, None).a = 2  # type: ignore[misc]
    quick = inspect.signature(Quick).parameters
    plain = inspect.signature(Plain).parameters
    assert list(quick) == list(plain)
    assert [p.kind for p in quick.values()] == [p.kind for p in plain.values()]
    assert [p.default for p in quick.values()][:3] == [p.default for p in plain.values()][:3]


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), ((1,), {}), ((1, 2, 3, [], (), 6), {}), ((1, 2), {"a": 3}), ((1, 2), {"f": 1})],
)
def test_wrong_arguments_raise_type_error_like_the_dataclass(args, kwargs):
    with pytest.raises(TypeError):
        Plain(*args, **kwargs)
    with pytest.raises(TypeError):
        Quick(*args, **kwargs)


def test_refuses_classes_it_cannot_serve():
    @dataclass
    class Mutable:
        a: int

    @dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclass(frozen=True, slots=True)
    class KeywordOnly:
        a: int = field(kw_only=True)

    @dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            pass

    for cls in (Mutable, NoSlots, KeywordOnly, Checked):
        with pytest.raises(TypeError):
            quick_init(cls)


@pytest.mark.parametrize(
    "cls",
    [
        SipMessage,
        SessionDescription,
        MediaDescription,
        NameAddr,
        SipUri,
        Via,
        ContentType,
        Party,
        LadderEntry,
        StreamRecord,
        CallRecord,
    ],
)
def test_product_classes_keep_the_fields_in_their_signature(cls):
    parameters = inspect.signature(cls).parameters
    assert list(parameters) == [f.name for f in dataclasses.fields(cls)]
    for f in dataclasses.fields(cls):
        default = parameters[f.name].default
        if f.default is not dataclasses.MISSING:
            assert default is f.default
        elif f.default_factory is dataclasses.MISSING:
            assert default is inspect.Parameter.empty


# -- the compiled twin of the slot setting (callscope.core._frozenfast) -------------------

_frozenfast = compiled_module("callscope.core._frozenfast")
needs_twin = pytest.mark.skipif(_frozenfast is None, reason="the compiled twin is not built")


def _variant(compiled: bool) -> type[Plain]:
    """A new class with Plain's fields, given quick_init with or without the twin."""
    made = dataclass(frozen=True, slots=True)(
        type("Both", (), {"__annotations__": dict(Plain.__annotations__),
                           "c": 7, "d": field(default_factory=list), "e": ()})
    )  # fmt: skip
    return _quick_init(made, compiled=compiled)


@needs_twin
@given(arguments, st.integers(min_value=0, max_value=5))
def test_compiled_slot_setting_gives_the_same_instance(kwargs, positional):
    compiled, python = _variant(True), _variant(False)
    names = [f.name for f in dataclasses.fields(Plain) if f.name in kwargs]
    args = [kwargs[n] for n in names[:positional]]
    rest = {n: kwargs[n] for n in names[positional:]}
    assert values(compiled(*args, **rest)) == values(python(*args, **rest))
    assert values(compiled(*args, **rest)) == values(Plain(*args, **rest))


@needs_twin
def test_compiled_slot_setting_keeps_references_right():
    compiled = _variant(True)
    value, other = object(), object()
    before = sys.getrefcount(value), sys.getrefcount(other)
    made = [compiled(1, "x", 2, [], (value,)) for _ in range(1000)]
    for obj in made[:10]:
        obj.__init__(1, "x", 2, [], (other,))  # replacing a value releases it
    assert all(obj.e[0] is value for obj in made[10:])
    del made, obj
    assert (sys.getrefcount(value), sys.getrefcount(other)) == before


@needs_twin
def test_slot_setter_refuses_what_is_not_its_class_or_a_slot():
    assert _frozenfast is not None
    setter = _frozenfast.SlotSetter(Quick, ["a", "b", "c", "d", "e"])
    with pytest.raises(TypeError):
        setter.fill(Plain(1, None), (1, 2, 3, 4, 5))
    with pytest.raises(TypeError):
        setter.fill(Quick(1, None), (1, 2))
    with pytest.raises(TypeError):
        _frozenfast.SlotSetter(Quick, ["a", "missing"])
    with pytest.raises(TypeError):
        _frozenfast.SlotSetter(Quick, ["__init__"])


def test_the_product_uses_the_twin_where_built():
    init = SipMessage.__init__
    assert ("_fill" in init.__globals__) == (_frozenfast is not None)
