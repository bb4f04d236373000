"""Sandboxed Jinja2 templating with Ansible's rules.

* The environment is Jinja2's immutable sandbox: templates cannot reach
  ``__class__``, ``__globals__``, ``__subclasses__``, modules or functions that
  were not handed to them, nor mutate the data they read.
* Undefined variables are errors (``StrictUndefined``), but ``x.y | default()``
  still works when ``x`` is undefined, as in Ansible.
* A string that is exactly one ``{{ expression }}`` keeps the expression's
  native type (a list stays a list); anything else renders to a string.
* Variables are resolved lazily: a play variable whose value is itself a
  template is rendered when a template reads it, with the full scope.

Templates are compiled once per source string and cached; the engine renders
the same task arguments for hundreds of hosts.

A render can always be stopped. Templates run on the event loop's thread and
a CPU-bound one (nested ``range`` loops) blocks the loop, so signal handlers
registered with the loop would wait for it. The CLI installs plain Python
signal handlers instead, which run between two bytecodes of whatever the
main thread is doing, and calls :func:`interrupt_render` from them: when the
interrupted frame is inside a render, that render raises
:class:`TemplateInterrupted` (a :class:`TemplateFailure`), so the task fails
with "interrupted" and the run stops with its recap. Work done in C cannot be
interrupted that way, so the sandbox also refuses ``**`` and ``*`` whose
result would be huge (``10 ** 10 ** 9``, ``'x' * 10 ** 10``), as it already
refuses ranges of more than 100,000 items.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from types import CodeType, FrameType
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, UndefinedError, nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.parser import Parser
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

from hlplay.errors import HlplayError
from hlplay.templating.filters import FILTERS, TESTS, FilterError

_MARKERS = ("{{", "{%", "{#")
_FALSE_STRINGS = frozenset(("false", "no", "off", "0", "n", "f", "none", "null", ""))
_TRUE_STRINGS = frozenset(("true", "yes", "on", "1", "y", "t"))


class TemplateFailure(HlplayError):
    """A template failed at run time: undefined variable, unsafe access, bad filter input."""

    def __init__(self, message: str, *, undefined: bool = False) -> None:
        super().__init__(message)
        self.undefined = undefined


class TemplateInterrupted(TemplateFailure):
    """A render stopped by Ctrl-C or SIGTERM (see :func:`interrupt_render`)."""


class _Interrupt(BaseException):
    """Raised by a signal handler inside a render.

    A BaseException, so that no ``except Exception`` in a filter or in Jinja2
    swallows it on its way out to the outermost render, which turns it into
    :class:`TemplateInterrupted`.
    """


class HlUndefined(StrictUndefined):
    """Strict, but attribute and item access chain, so ``x.y | default(1)`` works."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name[:2] == "__":
            raise AttributeError(name)
        return HlUndefined(hint=self._undefined_message)

    def __getitem__(self, key: Any) -> Any:
        return HlUndefined(hint=self._undefined_message)


class _Context(Context):
    def resolve_or_missing(self, key: str) -> Any:
        if key in self.vars:
            return self.vars[key]
        parent = self.parent
        try:
            return parent[key]
        except KeyError:
            return missing


# Bounds on what one operator may build: the work is done in C, where a
# signal handler cannot stop it.
MAX_POWER_BITS = 1 << 16
MAX_REPEAT_ITEMS = 10_000_000


class _Env(ImmutableSandboxedEnvironment):
    context_class = _Context
    intercepted_binops = frozenset(("**", "*"))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        huge = _huge_power(left, right) if operator == "**" else _huge_repeat(left, right)
        if huge:
            raise SecurityError(f"the result of '{operator}' would be too large")
        return super().call_binop(context, operator, left, right)


def _huge_power(base: Any, exp: Any) -> bool:
    if isinstance(base, bool) or not isinstance(base, int) or not isinstance(exp, int):
        return False
    return abs(base) > 1 and exp > 0 and exp * math.log2(abs(base)) > MAX_POWER_BITS


def _huge_repeat(left: Any, right: Any) -> bool:
    seq, times = (left, right) if isinstance(right, int) else (right, left)
    if not isinstance(times, int) or not isinstance(seq, (str, bytes, list, tuple)):
        return False
    return len(seq) * times > MAX_REPEAT_ITEMS


def has_template(value: Any) -> bool:
    """Whether a value (deeply) contains a template string."""
    if isinstance(value, str):
        return "{" in value and any(m in value for m in _MARKERS)
    if isinstance(value, Mapping):
        return any(has_template(k) or has_template(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(has_template(v) for v in value)
    return False


def template_keys(data: Mapping[str, Any]) -> frozenset[str]:
    """The keys of ``data`` whose values need rendering when read."""
    return frozenset(k for k, v in data.items() if has_template(v))


# A scope layer: a mapping and the keys in it whose values are templates.
Layer = tuple[Mapping[str, Any], frozenset[str]]
NO_TEMPLATES: frozenset[str] = frozenset()


class Vars(Mapping[str, Any]):
    """Variables for one host and task, as layers from the highest precedence down.

    Values listed in a layer's template keys are rendered with the whole scope
    the first time they are read. Data the run produced (registered results,
    facts) sits in layers without template keys and is never re-rendered.
    """

    __slots__ = ("_cache", "_layers", "_resolving", "_templar")

    def __init__(self, layers: Sequence[Layer], templar: Templar) -> None:
        self._layers = layers
        self._templar = templar
        self._cache: dict[str, Any] = {}
        self._resolving: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        for data, tkeys in self._layers:
            if key in data:
                if tkeys and key in tkeys:
                    return self._resolve(key, data[key])
                return data[key]
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return any(key in data for data, _ in self._layers)

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for data, _ in self._layers:
            for k in data:
                if k not in seen:
                    seen.add(k)
                    yield k

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def _resolve(self, key: str, raw: Any) -> Any:
        if key in self._cache:
            return self._cache[key]
        if key in self._resolving:
            raise TemplateFailure(f"recursive loop detected in template for variable '{key}'")
        self._resolving.add(key)
        try:
            value = self._templar.render(raw, self)
        finally:
            self._resolving.discard(key)
        self._cache[key] = value
        return value

    def child(self, top: Mapping[str, Any]) -> Vars:
        """This scope with ``top`` (raw data such as a loop item) above everything."""
        return Vars([(top, NO_TEMPLATES), *self._layers], self._templar)

    def flatten(self) -> dict[str, Any]:
        """Every variable, rendered, for display: not ``hostvars`` (it would recurse),
        nor functions; values that cannot be rendered are None."""
        out: dict[str, Any] = {}
        for k in self:
            if k == "hostvars":
                continue
            try:
                value = self[k]
            except HlplayError:
                value = None
            if not callable(value):
                out[k] = value
        return out


class _Compiled:
    __slots__ = ("native", "template")

    def __init__(self, template: Any, native: bool) -> None:
        self.template = template
        self.native = native


_SINGLE_EXPR = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)


class Templar:
    """Compiles and renders templates; one instance serves a whole run."""

    def __init__(self) -> None:
        env = _Env(undefined=HlUndefined, keep_trailing_newline=True, autoescape=False)
        env.filters.update(FILTERS)
        env.filters["d"] = env.filters["default"]
        env.tests.update(TESTS)
        self.env = env
        self.globals_layer: Layer = (dict(env.globals), NO_TEMPLATES)
        self._cache: dict[str, _Compiled] = {}
        self._expr_cache: dict[str, Any] = {}

    # --- compiling ------------------------------------------------------------

    def _expression_template(self, source: str) -> Any:
        cached = self._expr_cache.get(source)
        if cached is not None:
            return cached
        parser = Parser(self.env, source, state="variable")
        expr = parser.parse_expression()
        if not parser.stream.eos:
            raise TemplateSyntaxError(
                "unexpected text after the expression", parser.stream.current.lineno, None, None
            )
        expr.set_environment(self.env)
        body = [nodes.Assign(nodes.Name("result", "store"), expr, lineno=1)]
        tmpl = self.env.from_string(nodes.Template(body, lineno=1))
        self._expr_cache[source] = tmpl
        return tmpl

    def _compile(self, source: str) -> _Compiled:
        cached = self._cache.get(source)
        if cached is not None:
            return cached
        ast = self.env.parse(source)
        compiled: _Compiled | None = None
        m = _SINGLE_EXPR.match(source)
        if m and len(ast.body) == 1 and isinstance(ast.body[0], nodes.Output):
            out_nodes = [
                n
                for n in ast.body[0].nodes
                if not (isinstance(n, nodes.TemplateData) and not n.data.strip())
            ]
            if len(out_nodes) == 1 and not isinstance(out_nodes[0], nodes.TemplateData):
                inner = m.group("expr").lstrip("-+").rstrip("-")
                try:
                    compiled = _Compiled(self._expression_template(inner), True)
                except TemplateSyntaxError:
                    compiled = None
        if compiled is None:
            compiled = _Compiled(self.env.from_string(ast), False)
        self._cache[source] = compiled
        return compiled

    def check(self, source: str) -> None:
        """Compile a template string; raises ``jinja2.TemplateSyntaxError``."""
        if has_template(source):
            self._compile(source)

    def check_expression(self, source: str) -> None:
        """Compile a bare expression (``when:``); raises ``jinja2.TemplateSyntaxError``."""
        self._expression_template(_bare(source))

    # --- rendering ------------------------------------------------------------

    def render(self, value: Any, variables: Mapping[str, Any]) -> Any:
        """Render every template in ``value`` (strings, lists, mappings), deeply."""
        if isinstance(value, str):
            if "{" not in value or not has_template(value):
                return value
            return self._render_str(value, variables)
        if isinstance(value, Mapping):
            return {
                (self.render(k, variables) if isinstance(k, str) else k): self.render(v, variables)
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [self.render(v, variables) for v in value]
        return value

    def _run(self, tmpl: Any, variables: Mapping[str, Any], source: str, native: bool) -> Any:
        try:
            return self._rendering(tmpl, variables, source, native)
        except _Interrupt:
            if _in_render(sys._getframe(1)):
                raise  # a nested render (a variable's template): the outermost one says it
            raise TemplateInterrupted(f"interrupted while rendering {_short(source)}") from None

    def _rendering(self, tmpl: Any, variables: Mapping[str, Any], source: str, native: bool) -> Any:
        try:
            ctx = tmpl.new_context(variables, shared=True)
            if native:
                for _ in tmpl.root_render_func(ctx):
                    pass
                result = ctx.vars["result"]
                if isinstance(result, Undefined):
                    result._fail_with_undefined_error()
                return result
            return self.env.concat(tmpl.root_render_func(ctx))
        except UndefinedError as exc:
            if exc.message and "is unsafe" in exc.message:
                raise TemplateFailure(f"unsafe template {_short(source)}: {exc.message}") from None
            raise TemplateFailure(
                f"undefined variable: {exc.message} (in {_short(source)})", undefined=True
            ) from None
        except SecurityError as exc:
            raise TemplateFailure(f"unsafe template {_short(source)}: {exc}") from None
        except FilterError as exc:
            raise TemplateFailure(f"{exc.message} (in {_short(source)})") from None
        except TemplateFailure:
            raise
        except TemplateError as exc:
            raise TemplateFailure(f"template error in {_short(source)}: {exc}") from None
        except (
            TypeError,
            ValueError,
            KeyError,
            IndexError,
            AttributeError,
            ZeroDivisionError,
            OverflowError,
            RecursionError,
        ) as exc:
            raise TemplateFailure(
                f"template error in {_short(source)}: {type(exc).__name__}: {exc}"
            ) from None

    def _render_str(self, source: str, variables: Mapping[str, Any]) -> Any:
        try:
            compiled = self._compile(source)
        except TemplateSyntaxError as exc:
            raise TemplateFailure(
                f"template syntax error in {_short(source)}: {exc.message}"
            ) from None
        return self._run(compiled.template, variables, source, compiled.native)

    def evaluate(self, expression: str, variables: Mapping[str, Any]) -> Any:
        """Evaluate a bare expression (``result.rc == 0``), native result."""
        source = _bare(expression)
        try:
            tmpl = self._expression_template(source)
        except TemplateSyntaxError as exc:
            raise TemplateFailure(
                f"syntax error in expression {_short(source)}: {exc.message}"
            ) from None
        return self._run(tmpl, variables, source, True)

    def condition(self, expression: Any, variables: Mapping[str, Any]) -> bool:
        """Evaluate a conditional (``when``/``until``/``failed_when`` item)."""
        if isinstance(expression, bool):
            return expression
        if expression is None:
            return False
        if not isinstance(expression, str):
            return bool(expression)
        return truthy(self.evaluate(expression, variables))

    def conditions(self, expressions: Sequence[Any], variables: Mapping[str, Any]) -> bool:
        """All conditionals true (a list of them is ANDed, as in Ansible)."""
        return all(self.condition(e, variables) for e in expressions)


_RENDER_CODE: CodeType = Templar._rendering.__code__


def _in_render(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code is _RENDER_CODE:
            return True
        frame = frame.f_back
    return False


def interrupt_render(frame: FrameType | None) -> None:
    """Stop the render ``frame`` is in, if it is in one; for signal handlers.

    Call it last in a handler installed with :func:`signal.signal`, with the
    frame the handler was given: it raises into the interrupted code, which
    the outermost render turns into :class:`TemplateInterrupted`.
    """
    if _in_render(frame):
        raise _Interrupt()


def truthy(value: Any) -> bool:
    """Truth of a conditional's result; the strings 'false', 'no', '0' are false."""
    if isinstance(value, str):
        s = value.strip().lower()
        if s in _FALSE_STRINGS:
            return False
        if s in _TRUE_STRINGS:
            return True
        return bool(s)
    return bool(value)


def _bare(expression: str) -> str:
    """``"{{ x }}"`` written where an expression is expected means ``x``."""
    m = _SINGLE_EXPR.match(expression)
    if m and "{{" not in m.group("expr") and "}}" not in m.group("expr"):
        return m.group("expr").strip().lstrip("-+").rstrip("-").strip()
    return expression.strip()


def _short(source: str, limit: int = 80) -> str:
    text = source if len(source) <= limit else source[: limit - 3] + "..."
    return repr(text)


_DEFAULT: Templar | None = None


def default_templar() -> Templar:
    """The process-wide templar (its compile cache is shared)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Templar()
    return _DEFAULT
