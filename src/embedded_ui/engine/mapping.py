"""``{{ expression }}`` templates: JMESPath over an execution's context, with bounds.

    "{{ trigger.orderId }}"          the expression's value, any JSON type
    "Order {{ trigger.id }} paid"    text: None → "", strings as they are, anything else as
                                     compact JSON
    {"id": "{{ trigger.id }}"}, [..] rendered item by item; other values pass through

JMESPath is a data query language: no code, no attribute access, no I/O. Only its 26
built-in functions exist (no custom functions are registered), all pure. A literal ``{{``
in text is written ``{{ '{{' }}``.

Why evaluation is bounded, and how. JMESPath has no loops or recursion: each syntax node runs
once per element a projection hands it, so plain work is (input size) times (expression size),
and the input is capped upstream (1 MB). What can still blow up is *sharing*: ``[@, @]``
references its input twice at no cost, so a chain of them doubles a value's apparent size at
each step, and whatever then walks it as a tree (a flatten, ``==``, ``join``,
``to_string``, JSON output) pays the doubled size. So one render spends from a budget of
:data:`MAX_WORK` units, charged *before* the work happens:

- one per syntax node evaluated (projections, filters, ``map`` and ``sort_by`` included);
- a function call, the length of each list, string or object it is given; ``to_string`` and
  ``contains`` also the tree size of their argument, ``join`` the characters it joins;
- a flatten, the number of items it builds; a slice, its length;
- a comparison, the tree size of its left side (``==`` walks both sides as trees).

Sizes are counted with a walk that stops at the budget, so counting is bounded too. Past the
budget, or when a result or the rendered value exceeds :data:`MAX_OUTPUT_CHARS` (counted as
JSON text, each shared reference counted again), the render raises :class:`MappingError`.
Expressions are at most :data:`MAX_EXPRESSION_LENGTH` characters and
:data:`MAX_EXPRESSION_DEPTH` syntax levels; templates at most :data:`MAX_TEMPLATE_DEPTH`
levels and :data:`MAX_TEMPLATE_ITEMS` values. The context must hold JSON values only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jmespath
from jmespath import exceptions as jmespath_errors
from jmespath.functions import Functions
from jmespath.parser import ParsedResult
from jmespath.visitor import TreeInterpreter

__all__ = [
    "MAX_EXPRESSION_LENGTH",
    "MAX_OUTPUT_CHARS",
    "MAX_WORK",
    "CompiledTemplate",
    "MappingError",
    "check_condition",
    "check_template",
    "compile_condition",
    "compile_template",
    "render",
    "truthy",
]

MAX_EXPRESSION_LENGTH = 1_000
MAX_EXPRESSION_DEPTH = 50
MAX_TEMPLATE_DEPTH = 32
MAX_TEMPLATE_ITEMS = 10_000
MAX_OUTPUT_CHARS = 1_000_000
MAX_WORK = 1_000_000
CACHE_SIZE = 1_024
_QUOTES = "'\"`"
_FUNCTIONS: dict[str, Any] = Functions.FUNCTION_TABLE


class MappingError(Exception):
    """A template cannot be compiled or evaluated; the message names the expression."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _OverBudget(Exception):
    pass


def _shown(expression: str) -> str:
    text = expression.strip()
    return "{{ " + (text if len(text) <= 120 else text[:117] + "...") + " }}"


# --- compiling -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Expr:
    text: str
    tree: Any


@dataclass(frozen=True, slots=True)
class _Text:
    parts: tuple[str | _Expr, ...]


@dataclass(frozen=True, slots=True)
class _Object:
    items: tuple[tuple[str, _Node], ...]


@dataclass(frozen=True, slots=True)
class _Array:
    items: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Const:
    value: Any


_Node = _Expr | _Text | _Object | _Array | _Const


@lru_cache(maxsize=CACHE_SIZE)
def _parse(text: str) -> ParsedResult:
    return jmespath.compile(text)


def _compile_expression(raw: str) -> _Expr:
    text = raw.strip()
    if not text:
        raise MappingError("{{ }}: the expression is empty")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise MappingError(
            f"{_shown(text)}: the expression is longer than {MAX_EXPRESSION_LENGTH:,} characters"
        )
    try:
        parsed = _parse(text)
    except jmespath_errors.ParseError as exc:
        raise MappingError(
            f"{_shown(text)}: not a valid expression: {_parse_problem(exc)}"
        ) from None
    except RecursionError:
        raise MappingError(f"{_shown(text)}: the expression is nested too deeply") from None
    _check_tree(text, parsed.parsed)
    return _Expr(text, parsed.parsed)


def _parse_problem(exc: jmespath_errors.ParseError) -> str:
    """JMESPath's first line, without its boilerplate, plus where: one line for a log."""
    line = str(exc).splitlines()[0].rstrip(":").removesuffix(", for expression")
    for boilerplate in ("Invalid jmespath expression: ", "Bad jmespath expression: "):
        line = line.removeprefix(boilerplate)
    line = line.split(": Parse error at column")[0]
    return f"{line[0].lower()}{line[1:]} at character {exc.lex_position + 1}"


def _check_tree(text: str, tree: Any) -> None:
    """Depth within bounds; every function exists and gets the right number of arguments
    (JMESPath itself only finds out when the call runs)."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_EXPRESSION_DEPTH:
            raise MappingError(f"{_shown(text)}: the expression is nested too deeply")
        if node["type"] == "function_expression":
            _check_call(text, node["value"], len(node["children"]))
        stack.extend((c, depth + 1) for c in node.get("children", ()) if isinstance(c, dict))


def _check_call(text: str, name: str, given: int) -> None:
    entry = _FUNCTIONS.get(name)
    if entry is None:
        raise MappingError(f"{_shown(text)}: unknown function {name}()")
    signature = entry["signature"]
    variadic = bool(signature) and signature[-1].get("variadic", False)
    if given < len(signature) or (given > len(signature) and not variadic):
        expected = f"at least {len(signature)}" if variadic else str(len(signature))
        raise MappingError(f"{_shown(text)}: {name}() takes {expected} argument(s), {given} given")


def _closing(text: str, start: int) -> int:
    """Index of the ``}}`` that closes the ``{{`` ending at ``start``; -1 if none. Braces
    and quotes of the expression are skipped, so ``{{ {a: {b: c}} }}`` is one template."""
    depth, quote, index = 0, "", start
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = ""
        elif char in _QUOTES:
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            if depth == 0 and text.startswith("}}", index):
                return index
            depth = max(depth - 1, 0)
        index += 1
    return -1


def _compile_string(text: str) -> _Node:
    if "{{" not in text:
        return _Const(text)
    return _compile_template_string(text)


@lru_cache(maxsize=CACHE_SIZE)
def _compile_template_string(text: str) -> _Node:
    """A string's template, cached (only strings that hold one: plain strings cost nothing
    to compile and would push templates out). A workflow's strings are compiled again for
    every run (``render``), and that scan was a fifth of the in-process worker's time per
    Stream Data execution under ``bench/engine.py`` run-event. Nodes are immutable."""
    parts: list[str | _Expr] = []
    position = 0
    while (start := text.find("{{", position)) >= 0:
        end = _closing(text, start + 2)
        if end < 0:
            rest = text[start + 2 :]
            if "}}" in rest:  # a quote opened inside the expression ran past it
                rest = rest[: rest.rindex("}}")]
                raise MappingError(f"{_shown(rest)}: a quote (' \" or `) is not closed")
            raise MappingError(f"{_shown(rest)}: '{{{{' is not closed by '}}}}'")
        if start > position:
            parts.append(text[position:start])
        parts.append(_compile_expression(text[start + 2 : end]))
        position = end + 2
    if position < len(text):
        parts.append(text[position:])
    if len(parts) == 1 and isinstance(parts[0], _Expr):
        return parts[0]
    return _Text(tuple(parts))


def _compile(value: Any, depth: int, count: list[int]) -> _Node:
    count[0] += 1
    if count[0] > MAX_TEMPLATE_ITEMS:
        raise MappingError(f"the template holds more than {MAX_TEMPLATE_ITEMS:,} values")
    if isinstance(value, str):
        return _compile_string(value)
    if isinstance(value, Mapping | list):
        if depth >= MAX_TEMPLATE_DEPTH:
            raise MappingError(f"the template is nested more than {MAX_TEMPLATE_DEPTH} levels")
        if isinstance(value, Mapping):
            items = tuple((k, _compile(v, depth + 1, count)) for k, v in value.items())
            if all(isinstance(node, _Const) for _, node in items):
                return _Const(value)
            return _Object(items)
        nodes = tuple(_compile(v, depth + 1, count) for v in value)
        if all(isinstance(node, _Const) for node in nodes):
            return _Const(value)
        return _Array(nodes)
    return _Const(value)


class CompiledTemplate:
    """A template parsed once; :meth:`render` evaluates it against a context."""

    __slots__ = ("_root",)

    def __init__(self, root: _Node) -> None:
        self._root = root

    @property
    def is_static(self) -> bool:
        """True when the template holds no expression (rendering returns it unchanged)."""
        return isinstance(self._root, _Const)

    def render(self, context: Mapping[str, Any]) -> Any:
        run = _Run(context)
        result = run.node(self._root)
        if not self.is_static:
            _size(result, MAX_OUTPUT_CHARS, what="the rendered value")
        return result


def compile_template(value: Any) -> CompiledTemplate:
    """Parse every ``{{ }}`` in ``value`` (strings, nested in dicts and lists); raise
    :class:`MappingError` on the first problem. Parsed expressions are cached (LRU)."""
    return CompiledTemplate(_compile(value, 0, [0]))


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """Evaluate the templates in ``value`` against ``context``."""
    return compile_template(value).render(context)


def check_template(value: Any, where: str = "") -> list[str]:
    """Every problem of the templates in ``value``, for apply-time validation: syntax,
    unknown functions, bounds, values that are not JSON. Each message starts with the path
    of the string inside ``value``, prefixed by ``where`` (e.g. ``blocks[0].output.name``)."""
    problems: list[str] = []
    stack: list[tuple[str, Any, int]] = [(where, value, 0)]
    seen = 0
    while stack:
        path, item, depth = stack.pop()
        seen += 1
        prefix = f"{path}: " if path else ""
        if seen > MAX_TEMPLATE_ITEMS or depth > MAX_TEMPLATE_DEPTH:
            limit = "values" if seen > MAX_TEMPLATE_ITEMS else "levels of nesting"
            return [*problems, f"{prefix}the template has too many {limit}"]
        if isinstance(item, str):
            try:
                _compile_string(item)
            except MappingError as exc:
                problems.append(prefix + exc.message)
        elif isinstance(item, Mapping):
            for key, child in reversed(list(item.items())):
                if not isinstance(key, str):
                    problems.append(f"{prefix}the key {key!r} is not a string")
                    continue
                stack.append((f"{path}.{key}" if path else key, child, depth + 1))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", c, depth + 1) for i, c in reversed(list(enumerate(item))))
        elif not _is_json_scalar(item):
            problems.append(f"{prefix}{type(item).__name__} is not a JSON value (quote it)")
    return problems


def _is_json_scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, bool | int | str)


def compile_condition(condition: str) -> _Expr:
    """A filter's condition: a bare expression, or one ``{{ expression }}``."""
    text = condition.strip()
    if text.startswith("{{") and _closing(text, 2) == len(text) - 2:
        text = text[2:-2]
    elif "{{" in text:
        shown = text if len(text) <= 120 else text[:117] + "..."
        raise MappingError(f"{shown!r}: a condition is one expression, not text with templates")
    return _compile_expression(text)


def check_condition(condition: str) -> list[str]:
    """The problems of a filter condition ([] when it is valid)."""
    try:
        compile_condition(condition)
    except MappingError as exc:
        return [exc.message]
    return []


def truthy(expr: str, context: Mapping[str, Any]) -> bool:
    """Whether ``expr`` (bare or ``{{ }}``-wrapped) is true by JMESPath's rules: false,
    null, "", [] and {} are false; everything else, 0 included, is true."""
    value = _Run(context).evaluate(compile_condition(expr))
    if value is None or value is False:
        return False
    return not (isinstance(value, str | list | dict) and len(value) == 0)


# --- evaluating ----------------------------------------------------------------------------


class _Budget:
    __slots__ = ("remaining",)

    def __init__(self, units: int) -> None:
        self.remaining = units

    def spend(self, units: int) -> None:
        self.remaining -= units
        if self.remaining < 0:
            raise _OverBudget


def _size(value: Any, limit: int, what: str = "") -> int:
    """The JSON text size of ``value`` walked as a tree (a shared reference counts again),
    counting no further than ``limit``: past it, raise (``what`` named) or return
    ``limit + 1`` when ``what`` is empty."""
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, dict):
            total += 2 + sum(len(str(k)) + 4 for k in item)
            stack.extend(item.values())
        elif isinstance(item, list):
            total += 2 + len(item)
            stack.extend(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise MappingError(f"{what or 'a value'} holds {item}, which JSON cannot represent")
        elif item is None or isinstance(item, bool | int | float):
            total += 5 if isinstance(item, bool | None) else len(repr(item))
        else:
            raise MappingError(f"{what or 'a value'} holds a {type(item).__name__}, not JSON")
        if total > limit:
            if what:
                raise MappingError(f"{what} is larger than {limit:,} characters of JSON")
            return limit + 1
    return total


class _BoundedInterpreter(TreeInterpreter):
    """JMESPath's own interpreter, charging the budget before work that could grow."""

    def __init__(self, budget: _Budget) -> None:
        super().__init__()
        self._budget = budget
        self._builtins = Functions()

    def _tree(self, value: Any) -> int:
        return _size(value, max(self._budget.remaining, 0))

    def visit(self, node: Any, *args: Any, **kwargs: Any) -> Any:
        self._budget.spend(1)
        return super().visit(node, *args, **kwargs)

    def visit_flatten(self, node: Any, value: Any) -> Any:
        base = self.visit(node["children"][0], value)
        if not isinstance(base, list):
            return None
        self._budget.spend(len(base) + sum(len(e) for e in base if isinstance(e, list)))
        merged: list[Any] = []
        for element in base:
            if isinstance(element, list):
                merged.extend(element)
            else:
                merged.append(element)
        return merged

    def visit_slice(self, node: Any, value: Any) -> Any:
        if isinstance(value, list):
            self._budget.spend(len(value))
        return super().visit_slice(node, value)

    def visit_comparator(self, node: Any, value: Any) -> Any:
        left = self.visit(node["children"][0], value)
        right = self.visit(node["children"][1], value)
        self._budget.spend(self._tree(left))
        operator = node["value"]
        if operator not in ("eq", "ne"):
            # Ordering compares two numbers or two strings; anything else is null (JMESPath
            # would raise a TypeError for a number against a string).
            numbers = all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right)
            )
            if not (numbers or (isinstance(left, str) and isinstance(right, str))):
                return None
        return self.COMPARATOR_FUNC[operator](left, right)

    def visit_function_expression(self, node: Any, value: Any) -> Any:
        args = [self.visit(child, value) for child in node["children"]]
        name = node["value"]
        cost = sum(len(a) if isinstance(a, str | list | dict) else 1 for a in args)
        if name in ("to_string", "contains"):
            cost += sum(self._tree(a) for a in args)
        elif name == "join" and len(args) == 2 and isinstance(args[1], list):
            separator = len(args[0]) if isinstance(args[0], str) else 0
            cost += sum(len(s) + separator for s in args[1] if isinstance(s, str))
        self._budget.spend(cost)
        return self._builtins.call_function(name, args)


class _Run:
    """One render: the context and the budget every expression in it spends from."""

    def __init__(self, context: Mapping[str, Any]) -> None:
        self._context = dict(context)
        self._budget = _Budget(MAX_WORK)

    def evaluate(self, expr: _Expr) -> Any:
        shown = _shown(expr.text)
        try:
            result = _BoundedInterpreter(self._budget).visit(expr.tree, self._context)
        except _OverBudget:
            raise MappingError(
                f"{shown}: stopped after {MAX_WORK:,} units of work; select less data"
            ) from None
        except jmespath_errors.JMESPathTypeError as exc:
            expected = " or ".join(exc.expected_types)
            raise MappingError(
                f"{shown}: {exc.function_name}() expected {expected}, got {exc.actual_type}"
            ) from None
        except jmespath_errors.JMESPathError as exc:
            raise MappingError(f"{shown}: {str(exc).splitlines()[0][:200]}") from None
        except RecursionError:
            raise MappingError(f"{shown}: the data is nested too deeply") from None
        except MappingError as exc:
            raise MappingError(f"{shown}: {exc.message}") from None
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise MappingError(f"{shown}: {type(exc).__name__}: {str(exc)[:200]}") from None
        _size(result, MAX_OUTPUT_CHARS, what=f"the value of {shown}")
        return result

    def node(self, node: _Node) -> Any:
        if isinstance(node, _Const):
            return node.value
        if isinstance(node, _Expr):
            return self.evaluate(node)
        if isinstance(node, _Text):
            return self._text(node)
        if isinstance(node, _Object):
            return {key: self.node(child) for key, child in node.items}
        return [self.node(child) for child in node.items]

    def _text(self, node: _Text) -> str:
        pieces: list[str] = []
        total = 0
        for part in node.parts:
            piece = part if isinstance(part, str) else _as_text(self.evaluate(part))
            total += len(piece)
            if total > MAX_OUTPUT_CHARS:
                raise MappingError(f"the text is longer than {MAX_OUTPUT_CHARS:,} characters")
            pieces.append(piece)
        return "".join(pieces)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
