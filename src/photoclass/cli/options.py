"""Command-line flags derived from the config dataclasses, so each option is declared once
(`photoclass.config.option`): `batch_size` becomes `--batch-size`, with the field's help text,
help panel and choices; a bool becomes `--flag/--no-flag`; a tuple is written `0.8,0.1,0.1`;
a dict is a repeatable `KEY=TEXT`."""

from __future__ import annotations

import functools
import inspect
import re
import types
import typing
from collections.abc import Callable, Collection
from dataclasses import fields
from typing import Annotated, Any

import typer

from photoclass.config import Option, options_of
from photoclass.errors import ConfigError


def flag(name: str) -> str:
    """The command-line spelling of an API parameter or config field."""
    return "--" + name.replace("_", "-")


def _base(annotation: Any) -> Any:
    """`int | None` -> int; `tuple[float, ...]` -> tuple."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return typing.get_origin(annotation) or annotation


def _parameter(name: str, annotation: Any, declared: Option, default: Any) -> inspect.Parameter:
    base = _base(annotation)
    if declared.recipe:
        help_text = f"{declared.help} (model default)"
    elif default in (None, "", (), {}):
        help_text = declared.help
    else:
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        help_text = f"{declared.help} (default {shown})"
    extra: dict[str, Any] = {
        "help": help_text,
        "rich_help_panel": declared.panel or None,
        "show_default": False,
    }
    if base is bool:
        kind: Any = bool | None
        extra["param_decls"] = (f"{flag(name)}/--no-{name.replace('_', '-')}",)
    elif base is dict:
        kind, extra["metavar"] = list[str] | None, "KEY=TEXT"
    elif base is tuple:
        kind, extra["metavar"] = str | None, "A,B,..."
    else:
        kind = base | None
        if declared.choices:  # checked by the config itself (`Option.check`), shown here
            extra["metavar"] = "|".join(declared.choices)
    decls = extra.pop("param_decls", ())
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[kind, typer.Option(*decls, **extra)],
    )


def _parse(name: str, annotation: Any, value: Any) -> Any:
    """A flag's text as the config field's type (None stays None: not given)."""
    if value is None:
        return None
    base = _base(annotation)
    if base is tuple:
        try:
            return tuple(float(x) for x in value.split(","))
        except ValueError:
            raise ConfigError(f"`{name}` takes numbers separated by commas, e.g. 0.8,0.1,0.1") from None
    if base is dict:
        if not value:
            return None
        if not all("=" in item for item in value):
            raise ConfigError(f"`{name}` takes KEY=TEXT, e.g. owl='owl bird'")
        return dict(item.split("=", 1) for item in value)
    return value


def config_options(
    cls: type, *, only: Collection[str] | None = None, skip: Collection[str] = (), into: str = "options"
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: give a command one flag per option of the config dataclass `cls` (all, or
    `only` those, minus `skip`), and pass the command the keyword argument `into`: field name
    -> value given on the command line, or None."""
    declared = {
        name: o
        for name, o in options_of(cls).items()
        if o.cli and name not in skip and (only is None or name in only)
    }
    hints = typing.get_type_hints(cls)
    defaults = {
        f.name: f.default_factory() if callable(f.default_factory) else f.default for f in fields(cls)
    }

    def wrap(command: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != into]
        added = [_parameter(name, hints[name], o, defaults[name]) for name, o in declared.items()]

        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            given = {name: _parse(name, hints[name], kwargs.pop(name, None)) for name in declared}
            return command(*args, **{into: given}, **kwargs)

        run.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in (*own, *added)}
        return run

    return wrap


_PARAMETER = re.compile(r"`([a-z_][a-z0-9_]*)(?:=([^`]*))?`")


def translate(message: str) -> str:
    """A library error message in command-line terms: the API parameters it names in
    backticks become flags (`` `overwrite=True` `` -> --overwrite, `` `batch_size` `` ->
    --batch-size, `` `precision="fp32"` `` -> --precision fp32)."""

    def to_flag(match: re.Match[str]) -> str:
        name, value = match[1], match[2]
        if value is None or value == "True":
            return flag(name)
        if value == "False":
            return "--no-" + name.replace("_", "-")
        return f"{flag(name)} {value.strip(chr(34) + chr(39))}"

    return _PARAMETER.sub(to_flag, message)
