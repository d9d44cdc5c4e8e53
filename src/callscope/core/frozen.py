"""A cheaper ``__init__`` for the frozen, slotted dataclasses made on hot paths.

The ``__init__`` that `dataclasses` generates for a frozen class assigns every field with
``object.__setattr__`` (the class's own ``__setattr__`` refuses): a lookup and a call per
field, which made up a measurable share of the call tracker's time per SIP message (SDP
descriptions, ladder entries, call records). `quick_init` replaces it with an ``__init__`` that
sets each slot through its descriptor, about twice as fast. The signature (names, order,
defaults, default factories) and the instances are the same; they stay frozen.

Where its compiled twin is built (`callscope.core.compiled`), the ``__init__`` sets every
slot in one call (``_frozenfast.SlotSetter``) instead of one descriptor call per field.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, TypeVar

from callscope.core.compiled import compiled_module

__all__ = ["quick_init"]

_C = TypeVar("_C", bound=type)


class _Missing:
    """Marks a field whose default factory is to be called."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<factory default>"


_FACTORY = _Missing()

_frozenfast = compiled_module("callscope.core._frozenfast")


def quick_init(cls: _C) -> _C:
    """Give a frozen, slotted dataclass the faster ``__init__`` (see the module docs).

    Only plain fields are supported (every field in ``__init__``, positional or keyword,
    no ``InitVar``, no ``__post_init__``); anything else raises TypeError at import time.
    """
    return _quick_init(cls, compiled=_frozenfast is not None)


def _quick_init(cls: _C, *, compiled: bool) -> _C:
    """`quick_init`, with the slots set by the compiled twin or by their descriptors."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} is not a frozen dataclass with slots")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has __post_init__")
    fields = dataclasses.fields(cls)
    generated_init = cls.__dict__["__init__"]
    generated = inspect.signature(generated_init).parameters
    names = [f.name for f in fields]
    if list(generated)[1:] != names or any(
        p.kind is not p.POSITIONAL_OR_KEYWORD for p in list(generated.values())[1:]
    ):
        raise TypeError(f"{cls.__name__} has fields this __init__ cannot set")
    namespace: dict[str, Any] = {"_new_cls": cls, "_FACTORY": _FACTORY}
    arguments: list[str] = []
    body: list[str] = []
    for index, field in enumerate(fields):
        name = field.name
        namespace[f"_set_{index}"] = cls.__dict__[name].__set__
        if field.default is not dataclasses.MISSING:
            namespace[f"_default_{index}"] = field.default
            arguments.append(f"{name}=_default_{index}")
        elif field.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{index}"] = field.default_factory
            arguments.append(f"{name}=_FACTORY")
            body.append(f"    if {name} is _FACTORY:\n        {name} = _factory_{index}()\n")
        else:
            arguments.append(name)
        if not compiled:
            body.append(f"    _set_{index}(self, {name})\n")
    if compiled:
        assert _frozenfast is not None
        namespace["_fill"] = _frozenfast.SlotSetter(cls, names).fill
        body.append(f"    _fill(self, ({''.join(f'{name}, ' for name in names)}))\n")
    source = f"def __init__(self, {', '.join(arguments)}):\n{''.join(body)}"
    exec(source, namespace)  # noqa: S102 - as `dataclasses` builds __init__, from field names
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = generated_init.__doc__
    init.__annotations__ = dict(generated_init.__annotations__)
    type.__setattr__(cls, "__init__", init)
    return cls
