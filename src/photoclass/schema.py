"""Declarative checks of JSON documents (a model bundle's `photoclass.json`).

A schema maps each field name to a `Field`: its kind with the bounds it must keep, whether it
must be present, and how to fix it when it is wrong. One function, `validate`, walks a
document against a schema and raises `Invalid` at the first violation, naming the field by
its path (`classes[3]`, `history[0].val_loss`) and saying what was found and what was
expected. Nothing is converted or defaulted: a document either passes as it is or is refused.

    SCHEMA = {
        "image_size": Field(Int(32, 1024)),
        "classes": Field(List(Str(max_len=255), min_len=2, max_len=10_000, unique=True)),
        "temperature": Field(Num(0.01, 100), required=False),  # a later addition: optional
    }
    validate({"image_size": 10**9, ...}, SCHEMA)
    # Invalid: "image_size" is 1000000000, expected a whole number from 32 to 1024

Adding a field is one line. Fields added after documents were first written are
`required=False`, so those older documents keep validating; keys a schema does not name are
allowed (a newer writer's additions) and never read.

Kinds: `Int`, `Num` (finite int or float), `Bool`, `Str` (optionally one of `choices`, given
as a collection or a function returning one), `Const`, `List`, `Record` (an object with named
fields), `Map` (an object with any keys), `Nullable` (None or the kind).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Bool",
    "Const",
    "Field",
    "Int",
    "Invalid",
    "List",
    "Map",
    "Nullable",
    "Num",
    "Record",
    "Str",
    "validate",
]


class Invalid(ValueError):
    """A document that breaks its schema: `where` is the field's path, `problem` what is wrong
    ("is 7, expected ..."), `fix` the field's own advice, if it has one."""

    def __init__(self, where: str, problem: str, fix: str | None = None) -> None:
        # Double quotes, as in JSON: backticks in photoclass messages name API parameters.
        super().__init__(f'"{where}" {problem}')
        self.where, self.problem, self.fix = where, problem, fix


def shown(value: Any, limit: int = 40) -> str:
    """A value as it appears in the document, cut short: messages stay one readable line."""
    text = repr(value) if isinstance(value, str) else _json_name(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return {dict: "an object", list: "a list"}.get(type(value), type(value).__name__)


class Kind:
    """What a value must be; `check` raises `Invalid` when it is not."""

    def describe(self) -> str:
        raise NotImplementedError

    def check(self, value: Any, where: str) -> None:
        raise NotImplementedError

    def _refuse(self, value: Any, where: str, expected: str | None = None) -> None:
        raise Invalid(where, f"is {shown(value)}, expected {expected or self.describe()}")


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def _bounds(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f" from {_number(lo)} to {_number(hi)}"
    if lo is not None:
        return f" >= {_number(lo)}"
    return f" <= {_number(hi)}" if hi is not None else ""


@dataclass(frozen=True)
class Int(Kind):
    lo: int | None = None
    hi: int | None = None

    def describe(self) -> str:
        return "a whole number" + _bounds(self.lo, self.hi)

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            self._refuse(value, where)
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            self._refuse(value, where)


@dataclass(frozen=True)
class Num(Kind):
    """A finite number: JSON's NaN and Infinity, which Python reads, are refused unless
    `finite=False` (a loss that diverged is a fact worth keeping, not a corruption)."""

    lo: float | None = None
    hi: float | None = None
    positive: bool = False  # strictly above zero (a divisor)
    finite: bool = True

    def describe(self) -> str:
        kind = "a number > 0" if self.positive else "a finite number" if self.finite else "a number"
        return kind + _bounds(self.lo, self.hi)

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            self._refuse(value, where)
        if not math.isfinite(value):
            if self.finite:
                self._refuse(value, where)
            return
        if (
            (self.positive and value <= 0)
            or (self.lo is not None and value < self.lo)
            or (self.hi is not None and value > self.hi)
        ):
            self._refuse(value, where)


@dataclass(frozen=True)
class Bool(Kind):
    def describe(self) -> str:
        return "true or false"

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, bool):
            self._refuse(value, where)


@dataclass(frozen=True)
class Str(Kind):
    """A string of 1..`max_len` characters (0.. with `empty=True`), without NUL; with
    `choices`, one of them."""

    max_len: int = 1000
    choices: Collection[str] | Callable[[], Collection[str]] | None = None
    empty: bool = False

    def _choices(self) -> Collection[str] | None:
        return self.choices() if callable(self.choices) else self.choices

    def describe(self) -> str:
        choices = self._choices()
        if choices is not None:
            return "one of: " + ", ".join(sorted(choices))
        return f"a string of {0 if self.empty else 1} to {self.max_len} characters"

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, str) or "\0" in value:
            self._refuse(value, where)
        if len(value) > self.max_len:
            raise Invalid(where, f"has {len(value)} characters, expected {self.describe()}")
        if not value and not self.empty:
            self._refuse(value, where)
        choices = self._choices()
        if choices is not None and value not in choices:
            self._refuse(value, where)


@dataclass(frozen=True)
class Const(Kind):
    value: Any

    def describe(self) -> str:
        return shown(self.value)

    def check(self, value: Any, where: str) -> None:
        if type(value) is not type(self.value) or value != self.value:
            self._refuse(value, where)


@dataclass(frozen=True)
class Nullable(Kind):
    kind: Kind

    def describe(self) -> str:
        return f"null or {self.kind.describe()}"

    def check(self, value: Any, where: str) -> None:
        if value is not None:
            self.kind.check(value, where)


@dataclass(frozen=True)
class List(Kind):
    item: Kind
    min_len: int = 0
    max_len: int = 100_000
    unique: bool = False

    def describe(self) -> str:
        size = f"{self.min_len}" if self.min_len == self.max_len else f"{self.min_len} to {self.max_len}"
        return f"a list of {size} items, each {self.item.describe()}" + (
            ", no two alike" if self.unique else ""
        )

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, list):
            self._refuse(value, where)
        if not self.min_len <= len(value) <= self.max_len:
            raise Invalid(where, f"has {len(value)} items, expected {self.describe()}")
        for i, item in enumerate(value):
            self.item.check(item, f"{where}[{i}]")
        if self.unique:
            seen: set[Any] = set()
            for i, item in enumerate(value):
                if item in seen:
                    raise Invalid(f"{where}[{i}]", f"repeats {shown(item)}; each must appear once")
                seen.add(item)


@dataclass(frozen=True)
class Field:
    """One named field of a `Record`: its kind, whether it must be there, how to fix it."""

    kind: Kind
    required: bool = True
    fix: str | None = None


@dataclass(frozen=True)
class Record(Kind):
    """A JSON object with the named `fields`; other keys are allowed and ignored."""

    fields: Mapping[str, Field]
    max_keys: int = 10_000

    def describe(self) -> str:
        return "an object"

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, dict) or len(value) > self.max_keys:
            self._refuse(value, where, f"an object of at most {self.max_keys} keys")
        for name, spec in self.fields.items():
            at = f"{where}.{name}" if where else name
            if name not in value:
                if spec.required:
                    raise Invalid(at, f"is missing, expected {spec.kind.describe()}", spec.fix)
                continue
            try:
                spec.kind.check(value[name], at)
            except Invalid as e:
                raise Invalid(e.where, e.problem, e.fix or spec.fix) from None


@dataclass(frozen=True)
class Map(Kind):
    """A JSON object with any keys (of at most `key_len` characters), each value a `value`."""

    value: Kind
    max_keys: int = 10_000
    key_len: int = 1000

    def describe(self) -> str:
        return f"an object of at most {self.max_keys} keys, each value {self.value.describe()}"

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, dict) or len(value) > self.max_keys:
            self._refuse(value, where)
        for key, item in value.items():
            if len(key) > self.key_len:
                raise Invalid(where, f"has a key of {len(key)} characters, expected at most {self.key_len}")
            self.value.check(item, f"{where}.{key}")


def validate(document: Any, schema: Mapping[str, Field]) -> None:
    """Raise `Invalid` for the first field of `document` that breaks `schema` (in the
    schema's order, so the fields that decide what a document is come first)."""
    Record(schema).check(document, "")
