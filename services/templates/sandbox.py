"""The Jinja sandbox templates run in. Pure: no I/O.

`ImmutableSandboxedEnvironment`: no attribute that starts with `_`, no
internals of Python objects, nothing mutated. On top of it: no includes or
imports, only the names `data` and `profile`, keys before dict methods
(`data.items` is the key `items`, never dict.items), bounds on output and arithmetic, and
undefined names that fail (StrictUndefined) naming their full path
(`data.cart.total is undefined`), never a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache, partial
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import missing

NAMES = frozenset({"data", "profile"})
FORBIDDEN_NODES = (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)
# Bounds on what one field may cost: `"x" * 10**9` or `10**100000` must fail,
# not take a worker's memory or CPU (constant folding at compile time too).
MAX_RENDERED_CHARS = 1_000_000
MAX_POWER_BITS = 4096


class MissingVariable(jinja2.UndefinedError):
    """An undefined name, with its path (`data.cart.total`) when it has one."""

    def __init__(self, message: str, variable: str | None) -> None:
        super().__init__(message)
        self.variable = variable


class Scope(dict[Any, Any]):
    """A mapping that knows its path, so a missing key is reported as `data.x.y`."""

    __slots__ = ("path",)

    def __init__(self, path: str, items: Mapping[Any, Any]) -> None:
        super().__init__(items)
        self.path = path


class PathList(list[Any]):
    """A list that knows its path (`data.items[3] is undefined`)."""

    __slots__ = ("path",)

    def __init__(self, path: str, items: list[Any]) -> None:
        super().__init__(items)
        self.path = path


def _path(obj: Any, name: Any) -> str | None:
    if obj is missing:
        return str(name)
    if not isinstance(obj, Scope | PathList):
        return None
    return f"{obj.path}[{name}]" if isinstance(name, int) else f"{obj.path}.{name}"


def _where(obj: Any, name: Any) -> str:
    return _path(obj, name) or f"{name} of a {type(obj).__name__} value"


class NamedUndefined(jinja2.StrictUndefined):
    """StrictUndefined whose error names the variable by its full path."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        if self._undefined_obj is missing:
            name = self._undefined_name
            return f"{name} is undefined (variables are data.<name> and profile.<field>)"
        return f"{_where(self._undefined_obj, self._undefined_name)} is undefined"

    def __init__(
        self,
        hint: str | None = None,
        obj: Any = missing,
        name: str | None = None,
        exc: type[jinja2.TemplateRuntimeError] = jinja2.UndefinedError,
    ) -> None:
        if exc is jinja2.UndefinedError:
            # The error carries the path itself, so callers need not parse messages.
            exc = partial(MissingVariable, variable=_path(obj, name))  # type: ignore[assignment]
        super().__init__(hint, obj, name, exc)


class Sandbox(ImmutableSandboxedEnvironment):
    """A `data`/`profile` mapping shows its keys and nothing else: `data.items`
    is the key `items` or undefined, never a dict method that would print as
    `<built-in method ...>` (iterate with the `items` filter instead).
    Immutable: a template cannot change the values it is given."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and _too_big(left, right):
            raise SecurityError(f"a power above {MAX_POWER_BITS} bits is not allowed")
        if operator == "*" and (_too_long(left, right) or _too_long(right, left)):
            raise SecurityError(f"a result above {MAX_RENDERED_CHARS:,} characters")
        return super().call_binop(context, operator, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        if not isinstance(obj, Scope):
            return super().getattr(obj, attribute)
        if attribute in obj:
            return obj[attribute]
        if attribute.startswith("_"):
            return self.unsafe_undefined(obj, attribute)
        return self.undefined(obj=obj, name=attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, Scope) and argument not in obj:
            if isinstance(argument, str):
                return self.getattr(obj, argument)
            return self.undefined(obj=obj, name=argument)
        return super().getitem(obj, argument)

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        return self.undefined(
            f"{_where(obj, attribute)} is not allowed in a template",
            name=attribute,
            obj=obj,
            exc=SecurityError,
        )


def _too_big(base: Any, exponent: Any) -> bool:
    if not isinstance(base, int | float) or not isinstance(exponent, int | float):
        return False
    bits = abs(int(base)).bit_length() or 1
    return bits * abs(exponent) > MAX_POWER_BITS


def _too_long(seq: Any, times: Any) -> bool:
    return (
        isinstance(seq, str | list)
        and isinstance(times, int)
        and len(seq) * times > MAX_RENDERED_CHARS
    )


def _blank_none(value: Any) -> Any:
    # A JSON null in the data prints as nothing, not as "None".
    return "" if value is None else value


_ENVIRONMENTS = {
    html: Sandbox(undefined=NamedUndefined, autoescape=html, finalize=_blank_none)
    for html in (False, True)
}


def is_html(part: str, name: str) -> bool:
    """Only email html is autoescaped: SMS, push and in-app text is not HTML."""
    return (part, name) == ("email", "html")


@lru_cache(maxsize=512)
def _compiled(source: str, html: bool) -> jinja2.Template:
    # Pinned versions never change, so a worker compiles each source once.
    return _ENVIRONMENTS[html].from_string(source)


def source_problem(source: str, html: bool = False) -> str | None:
    """Why `source` cannot be a template (syntax, includes, unknown names), or None."""
    env = _ENVIRONMENTS[html]
    try:
        tree = env.parse(source)
        env.compile(tree)
    except jinja2.TemplateSyntaxError as err:
        return f"line {err.lineno}: {err.message}"
    if any(True for _ in tree.find_all(FORBIDDEN_NODES)):
        return "a template cannot include, import or extend other templates"
    unknown = sorted(meta.find_undeclared_variables(tree) - NAMES - set(env.globals))
    if unknown:
        return f"unknown variable {unknown[0]!r}: variables are data.<name> and profile.<field>"
    return None


def scoped(path: str, value: Any) -> Any:
    if isinstance(value, Mapping):
        return Scope(path, {k: scoped(f"{path}.{k}", v) for k, v in value.items()})
    if isinstance(value, list):
        return PathList(path, [scoped(f"{path}[{i}]", v) for i, v in enumerate(value)])
    return value


def render_source(source: str, html: bool, values: Mapping[str, Any]) -> str:
    """`source` rendered with `values`, at most MAX_RENDERED_CHARS long."""
    chunks, size = [], 0
    for chunk in _compiled(source, html).generate(values):
        size += len(chunk)
        if size > MAX_RENDERED_CHARS:
            raise SecurityError(f"renders to more than {MAX_RENDERED_CHARS:,} characters")
        chunks.append(chunk)
    return "".join(chunks)
