"""The public surface: __all__, module names, docstrings, version and reprs."""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import resilio
from resilio import CircuitBreaker, EventBus, ManualClock, SlidingWindowBreaker

EXPORTED: list[str] = list(resilio.__all__)


def _public_members(cls: type) -> list[tuple[str, Any]]:
    """Public methods and properties of *cls*, including those of resilio base classes."""
    members: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith("resilio"):
            continue
        for name, raw in vars(klass).items():
            if name.startswith("_"):
                continue
            value = raw.__func__ if isinstance(raw, (staticmethod, classmethod)) else raw
            if isinstance(value, property) or inspect.isroutine(value):
                members[name] = value
    return sorted(members.items())


class TestAll:
    """__all__ is sorted, unique, complete and accurate."""

    def test_sorted(self) -> None:
        """__all__ is in sorted order."""
        assert sorted(EXPORTED) == EXPORTED

    def test_unique(self) -> None:
        """__all__ names each thing once."""
        assert len(EXPORTED) == len(set(EXPORTED))

    def test_everything_listed_exists(self) -> None:
        """Every name in __all__ is an attribute of resilio."""
        missing = [name for name in EXPORTED if not hasattr(resilio, name)]
        assert missing == []

    def test_complete(self) -> None:
        """Every public, non-module attribute of resilio is listed in __all__."""
        public = {
            name
            for name, value in vars(resilio).items()
            if not name.startswith("_")
            and not inspect.ismodule(value)
            # `from __future__ import annotations` leaves a feature flag behind.
            and type(value).__module__ != "__future__"
        }
        assert public - set(EXPORTED) == set()

    def test_star_import_matches_all(self) -> None:
        """from resilio import * binds exactly the names in __all__."""
        namespace: dict[str, Any] = {}
        exec("from resilio import *", namespace)
        namespace.pop("__builtins__", None)
        assert set(namespace) == set(EXPORTED)

    def test_documented_names_exported(self) -> None:
        """The clock, bus, error and breaker names of the API contract are exported."""
        documented = {
            "Clock",
            "SystemClock",
            "ManualClock",
            "EventBus",
            "Event",
            "default_bus",
            "CircuitStateChanged",
            "CallRejected",
            "ResilioError",
            "RejectedError",
            "CircuitOpenError",
            "CircuitBreaker",
            "CircuitState",
            "SlidingWindowBreaker",
        }
        assert documented <= set(EXPORTED)


class TestModuleNames:
    """Exported classes and functions present themselves as living in resilio."""

    @pytest.mark.parametrize("name", EXPORTED)
    def test_module_is_resilio(self, name: str) -> None:
        """Classes and functions in __all__ have __module__ == 'resilio'."""
        obj = getattr(resilio, name)
        if not (inspect.isclass(obj) or inspect.isroutine(obj)):
            pytest.skip(f"{name} is neither a class nor a function")
        assert obj.__module__ == "resilio"


class TestDocstrings:
    """Everything public is documented."""

    @pytest.mark.parametrize("name", EXPORTED)
    def test_exported_name_has_docstring(self, name: str) -> None:
        """Each exported class and function has its own non-empty docstring."""
        doc = getattr(resilio, name).__doc__
        assert doc is not None
        assert doc.strip()

    @pytest.mark.parametrize(
        "name", [name for name in EXPORTED if inspect.isclass(getattr(resilio, name))]
    )
    def test_public_members_have_docstrings(self, name: str) -> None:
        """Every public method and property of an exported class has a docstring."""
        cls = getattr(resilio, name)
        undocumented = [
            member for member, value in _public_members(cls) if not (inspect.getdoc(value) or "")
        ]
        assert undocumented == []

    def test_member_scan_finds_members(self) -> None:
        """The member scan sees inherited public methods (a guard against a vacuous test)."""
        names = {name for name, _ in _public_members(CircuitBreaker)}
        assert {"call", "call_async", "reset", "snapshot", "state", "name"} <= names


class TestVersion:
    """The version comes from the installed distribution."""

    def test_version_matches_metadata(self) -> None:
        """resilio.__version__ equals importlib.metadata.version('resilio')."""
        assert resilio.__version__ == importlib.metadata.version("resilio-primitives")

    def test_unknown_attribute_raises(self) -> None:
        """Any other missing attribute is an AttributeError naming it."""
        with pytest.raises(AttributeError, match="no_such_thing"):
            resilio.no_such_thing  # noqa: B018


PRIMITIVES: dict[str, Callable[..., Any]] = {
    "CircuitBreaker": CircuitBreaker,
    "SlidingWindowBreaker": SlidingWindowBreaker,
    "TokenBucket": functools.partial(resilio.TokenBucket, 10, 5),
    "LeakyBucket": functools.partial(resilio.LeakyBucket, 10, 5),
    "WorkerPool": resilio.WorkerPool,
    "Retry": resilio.Retry,
    "Timeout": functools.partial(resilio.Timeout, 1.0),
    "Fallback": functools.partial(resilio.Fallback, lambda exc: None),
    "SessionManager": resilio.SessionManager,
}


class TestRepr:
    """Each primitive's repr shows its name."""

    def test_every_named_primitive_is_covered(self) -> None:
        """Every exported class taking name=, clock= and bus= is among the primitives below."""
        named = set()
        for name in EXPORTED:
            obj = getattr(resilio, name)
            if not inspect.isclass(obj) or issubclass(obj, BaseException):
                continue
            try:
                params = inspect.signature(obj).parameters
            except (TypeError, ValueError):  # pragma: no cover - builtins without signature
                continue
            if {"name", "clock", "bus"} <= set(params):
                named.add(name)
        assert named == set(PRIMITIVES)

    @pytest.mark.parametrize("name", list(PRIMITIVES))
    def test_repr_contains_name(self, name: str) -> None:
        """repr() of a primitive contains the name it was given."""
        primitive = PRIMITIVES[name](name="payments-api", clock=ManualClock(), bus=EventBus())
        assert "payments-api" in repr(primitive)
        assert name in repr(primitive)

    @pytest.mark.parametrize("name", list(PRIMITIVES))
    def test_repr_contains_default_name(self, name: str) -> None:
        """repr() of a primitive built without name= contains its default name."""
        primitive = PRIMITIVES[name](clock=ManualClock(), bus=EventBus())
        assert repr(primitive.name) in repr(primitive)


def test_api_reference_lists_every_export() -> None:
    """docs/api.md renders every name in __all__."""
    text = (Path(__file__).parent.parent / "docs" / "api.md").read_text(encoding="utf-8")
    missing = [name for name in resilio.__all__ if f"::: resilio.{name}\n" not in text]
    assert missing == []


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("Fallback", (int,)),
        ("Keyed", (str, int)),
        ("MapResults", (int,)),
        ("Session", (int,)),
        ("SessionManager", (int,)),
        ("TaskHandle", (int,)),
    ],
)
def test_generic_classes_subscript_at_runtime(name: str, args: tuple[type, ...]) -> None:
    """The generic classes can be subscripted at runtime, as annotations outside quotes need."""
    cls = getattr(resilio, name)
    alias = cls[args]
    assert alias.__origin__ is cls
    assert alias.__args__ == args
