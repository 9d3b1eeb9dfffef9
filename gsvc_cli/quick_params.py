"""Command-line values without pydantic where no validation is needed, for a faster start.

typer (0.2x) converts every non-bool parameter through a pydantic TypeAdapter, built before it
looks at the value, so every `gsvc` command imports pydantic (~0.1 s, the largest single item of a
short decode's start-up) even when every value is None, a file name or a small integer. `install()`
gives typer's parameters a converter that handles exactly those values itself, with the result
typer's adapters give:

- None (a parameter not given and without a default): None, as typer's RuntimeParam.coerce;
- a str for a `Path` parameter: `Path(value)`, then typer's own path checks (exists, file/dir,
  readable, ...), the same function typer calls after its adapter;
- a str for a `str` parameter: the value;
- an int, or a str of decimal digits, for an `int` parameter within its min/max (no clamp).

Anything else (a number out of range, an enum, a float, a list, a custom parser, a file) goes to
typer's own converter, so errors and their messages are typer's.

It replaces a method of typer's private classes (`typer.core._TyperParameter.get_runtime_param`)
and calls private functions (`typer._coercion`, `typer._param_types`), while the package asks only
for `typer>=0.12`. So it is installed only on a typer minor release it was checked against
(`CHECKED_TYPER`); under any other typer nothing is changed and typer converts every value itself
(correct, only ~0.1 s slower to start). tests/test_quick_params.py says so on an unchecked typer, so an
upgrade is noticed (its tests of the quick path are skipped, with the reason, under any other typer).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_DIGITS = re.compile(r"-?[0-9]+")
_FALLBACK = object()

# typer minor releases (major.minor) whose internals this module was checked against.
CHECKED_TYPER: tuple[str, ...] = ("0.29",)


def typer_checked(version: str) -> bool:
    """True when typer `version` ("0.29.2") is of a minor release in CHECKED_TYPER."""
    return ".".join(version.split(".")[:2]) in CHECKED_TYPER


class _QuickParam:
    """Stands in for typer's RuntimeParam of one parameter (only `coerce` is called on it)."""

    def __init__(self, descriptor: Any, build: Any, coerce_path: Any) -> None:
        self._descriptor = descriptor
        self._build = build
        self._coerce_path = coerce_path
        self._full: Any = None

    def _typer_param(self) -> Any:
        if self._full is None:
            self._full = self._build(self._descriptor)
        return self._full

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if not (param.multiple or param.nargs != 1):
            quick = self._quick(value, param, ctx)
            if quick is not _FALLBACK:
                return quick
        return self._typer_param().coerce(value, param=param, ctx=ctx)

    def _quick(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None:
            return None
        info = self._descriptor.parameter_info
        if info.parser is not None or self._descriptor.file_annotation is not None:
            return _FALLBACK
        annotation = self._descriptor.annotation
        if annotation is Path and info.path_type is None and isinstance(value, str) and value:
            return self._coerce_path(Path(value), info, path_type=Path, param=param, ctx=ctx)
        if annotation is str and isinstance(value, str):
            return value
        if annotation is int and not info.clamp:
            if isinstance(value, str) and _DIGITS.fullmatch(value):
                value = int(value)
            if type(value) is int and (info.min is None or value >= info.min) and (
                    info.max is None or value <= info.max):
                return value
        return _FALLBACK


def install() -> bool:
    """Give typer's parameters the quick converter. False (and nothing changed) on a typer release
    not in CHECKED_TYPER or lacking the internals it relies on (typer's own conversion then runs)."""
    import typer

    if not typer_checked(getattr(typer, "__version__", "")):
        return False
    try:
        from typer._coercion import build_runtime_param
        from typer._param_types import coerce_cli_path
        from typer.core import _TyperParameter
    except ImportError:
        return False
    original = getattr(_TyperParameter, "get_runtime_param", None)
    if original is None or getattr(original, "_gsvc_quick", False):
        return original is not None

    def get_runtime_param(self: Any) -> Any:
        if getattr(self, "_runtime_param", None) is None:
            self._runtime_param = _QuickParam(self.type_descriptor, build_runtime_param, coerce_cli_path)
        return self._runtime_param

    get_runtime_param._gsvc_quick = True  # type: ignore[attr-defined]
    _TyperParameter.get_runtime_param = get_runtime_param
    return True
