"""Python functions as Realtime function tools: declared from their signature, run for the model.

* :func:`function_tool` — a :class:`~realtime_nb.protocol.FunctionTool` declaration from a
  function's signature and docstring (JSON Schema from the type hints; ``Args:`` lines of a
  Google-style docstring describe the parameters).
* :class:`Tools` — what :meth:`Session.use_tools <realtime_nb.client.session.Session.use_tools>`
  returns: it runs every ``function_call`` of a finished response, sends each result back as a
  ``function_call_output`` with the same ``call_id`` and (by default) asks for the response that
  uses them — in text turns and hands-free voice turns alike, with no cell waiting on it.

A tool that raises, or is called with arguments it cannot take, does not break the
conversation: the error goes back to the model as the output (``{"error": "..."}``), is kept in
:attr:`Tools.calls` and logged as a ``realtime_nb.tool_call`` marker in the event log.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import json
import re
import time
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from realtime_nb.protocol import FunctionTool

if TYPE_CHECKING:
    from .mirror import ResponseState
    from .session import Session

__all__ = ["ToolCall", "Tools", "function_tool", "json_schema_for"]

_SCALARS: dict[type, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters)\s*:\s*$")
_ARG_LINE = re.compile(r"^\s+(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")


def json_schema_for(hint: Any, where: str = "value") -> dict[str, Any]:
    """The JSON Schema of a type hint, for tool parameters.

    Understood: ``str``, ``int``, ``float``, ``bool``, ``Literal[...]`` (an ``enum``),
    :class:`enum.Enum` subclasses (their values), ``list[X]`` / ``tuple[X, ...]`` /
    ``Sequence[X]`` (``array``), ``dict`` / ``Mapping`` (``object``), ``X | None`` (as ``X``;
    say "optional" with a default), :class:`typing.TypedDict` (an ``object`` with its keys) and
    ``Any`` (no constraint). Anything else raises ``TypeError`` naming ``where``: a model can
    only send JSON.
    """
    if hint is Any or hint is inspect.Parameter.empty:
        return {}
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Literal:
        values = list(args)
        kinds = {_SCALARS.get(type(v)) for v in values}
        schema: dict[str, Any] = {"enum": values}
        if len(kinds) == 1 and None not in kinds:
            schema = {"type": kinds.pop(), "enum": values}
        return schema
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return json_schema_for(rest[0], where)
        return {"anyOf": [json_schema_for(a, where) for a in rest]}
    if origin in (list, set, frozenset, Sequence):
        return {"type": "array", **({"items": json_schema_for(args[0], where)} if args else {})}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": json_schema_for(args[0], where)}
        return {"type": "array", "prefixItems": [json_schema_for(a, where) for a in args],
                "minItems": len(args), "maxItems": len(args)}
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return {"type": "object"}
    if hint in (list, tuple, set):
        return {"type": "array"}
    if isinstance(hint, type):
        if issubclass(hint, bool):
            return {"type": "boolean"}
        if issubclass(hint, enum.Enum):
            return json_schema_for(Literal[tuple(m.value for m in hint)], where)
        for py, name in _SCALARS.items():
            if issubclass(hint, py):
                return {"type": name}
        if typing.is_typeddict(hint):
            hints = typing.get_type_hints(hint)
            # is_typeddict does not narrow: hint is a TypedDict class, which has the attribute
            return {"type": "object",
                    "properties": {k: json_schema_for(v, f"{where}.{k}") for k, v in hints.items()},
                    "required": sorted(hint.__required_keys__)}  # type: ignore[attr-defined]
    raise TypeError(f"{where}: the type {hint!r} has no JSON form a model could send; use str, "
                    "int, float, bool, Literal, an Enum, list, dict, a TypedDict or Any.")


def _doc_parts(doc: str) -> tuple[str, dict[str, str]]:
    """Split a docstring into its description and its ``Args:`` section (name → text)."""
    out: list[str] = []
    params: dict[str, str] = {}
    in_args = False
    current: str | None = None
    indent = 0  # of the current parameter's line: deeper lines continue its text
    for line in doc.splitlines():
        if _ARGS_HEADER.match(line):
            in_args, current = True, None
            continue
        if in_args and line.strip() and not line[:1].isspace():
            in_args = False  # the section ends at the next unindented line
        if not in_args:
            out.append(line)
            continue
        depth = len(line) - len(line.lstrip())
        m = _ARG_LINE.match(line)
        if m and (current is None or depth <= indent):
            current, indent = m.group(1).lstrip("*"), depth
            params[current] = m.group(3).strip()
        elif current is not None and line.strip():
            params[current] = f"{params[current]} {line.strip()}"
    return "\n".join(out).strip(), params


def function_tool(fn: Callable[..., Any], *, name: str | None = None,
                  description: str | None = None) -> FunctionTool:
    """Declare ``fn`` as a function tool: name, description and JSON Schema of its arguments.

    The schema comes from the signature: parameter names, JSON types from the annotations (see
    :func:`json_schema_for`), parameters without a default are ``required``. The docstring
    (before an ``Args:`` section) is the description that tells the model when to call it;
    ``Args:`` lines (``city: The city's name.``) describe the parameters. ``*args`` and
    ``**kwargs`` are refused (``TypeError``): the model sends named JSON values.
    """
    sig = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:
        raise TypeError(f"{getattr(fn, '__name__', fn)!r}: its annotations cannot be "
                        f"resolved ({exc})") from exc
    text, arg_docs = _doc_parts(inspect.getdoc(fn) or "")
    properties: dict[str, Any] = {}
    required: list[str] = []
    tool_name = name or getattr(fn, "__name__", None)
    if not tool_name or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", tool_name):
        raise TypeError(f"tool name {tool_name!r}: use 1-64 letters, digits, '_' or '-' "
                        "(pass name=...)")
    for pname, param in sig.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"{tool_name}({'*' if param.kind == param.VAR_POSITIONAL else '**'}"
                            f"{pname}): a tool takes named JSON arguments only")
        if param.kind is param.POSITIONAL_ONLY:
            raise TypeError(f"{tool_name}: parameter {pname!r} is positional-only; the model "
                            "passes arguments by name")
        schema = dict(json_schema_for(hints.get(pname, param.annotation),
                                      f"{tool_name}({pname})"))
        if arg_docs.get(pname):
            schema["description"] = arg_docs[pname]
        if param.default is param.empty:
            required.append(pname)
        elif isinstance(param.default, str | int | float | bool) and not isinstance(
                param.default, enum.Enum):
            schema["default"] = param.default
        properties[pname] = schema
    return FunctionTool(type="function", name=tool_name,
                        description=description if description is not None else text,
                        parameters={"type": "object", "properties": properties,
                                    "required": required, "additionalProperties": False})


@dataclass
class ToolCall:
    """One function call the model made and what running it gave."""

    name: str
    call_id: str
    arguments: str
    response_id: str | None
    result: Any = None
    error: str | None = None
    ms: float = 0.0
    output: str = ""  # what was sent back as the function_call_output

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Tools:
    """Functions the model may call, run for it by the Session (see :meth:`Session.use_tools`).

    ``calls`` lists every call run, in order. Plain functions run in a worker thread, so a slow
    one never blocks the kernel (pass ``thread=False`` to ``use_tools`` for functions that must
    run on the event loop, e.g. ones touching widgets); coroutine functions are awaited.
    """

    session: Session
    functions: dict[str, Callable[..., Any]]
    respond: bool = True
    thread: bool = True
    calls: list[ToolCall] = field(default_factory=list)
    _follow: dict[str, asyncio.Future[str | None]] = field(default_factory=dict, repr=False)
    _active: bool = field(default=True, repr=False)

    def close(self) -> None:
        """Stop answering calls (the session keeps the declarations until updated)."""
        self._active = False
        self.session.off("response.done", self._on_done)

    async def answer(self, response: ResponseState | Mapping[str, Any] | str,
                     timeout: float | None = 60.0) -> ResponseState:
        """The response that ends the chain starting at ``response``.

        ``response`` (a :class:`~.mirror.ResponseState`, a ``response.done`` event or a
        response id) may be answered by tool calls; each round trip creates a new response.
        Returns the last one: the model's answer that uses the results. Needs ``respond=True``.
        """
        rid = _response_id(response)
        async with asyncio.timeout(timeout):
            while True:
                nxt = await asyncio.shield(self._future(rid))
                if nxt is None:
                    return self.session.mirror.responses[rid]
                rid = nxt

    def _future(self, rid: str) -> asyncio.Future[str | None]:
        fut = self._follow.get(rid)
        if fut is None:
            fut = self._follow[rid] = asyncio.get_running_loop().create_future()
        return fut

    async def _on_done(self, event: dict[str, Any]) -> None:
        if not self._active:
            return
        resp = event.get("response") or {}
        rid = resp.get("id")
        if not isinstance(rid, str):
            return
        fut = self._future(rid)
        try:
            calls = [item for item in resp.get("output") or ()
                     if isinstance(item, dict) and item.get("type") == "function_call"
                     and item.get("name") in self.functions]
            if not calls or resp.get("status") != "completed":
                if not fut.done():
                    fut.set_result(None)
                return
            for item in calls:
                call = await self._run(item, rid)
                await self.session.create_item({"type": "function_call_output",
                                                "call_id": call.call_id, "output": call.output})
            if not self.respond:
                if not fut.done():
                    fut.set_result(None)
                return
            created = await self.session.create_response(wait=True)
            nxt = (created.get("response") or {}).get("id")
            if not fut.done():
                fut.set_result(nxt if isinstance(nxt, str) else None)
        except asyncio.CancelledError:
            if not fut.done():
                fut.cancel()
            raise
        except Exception as exc:  # reported by the Session as a callback error, too
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # retrieved here: answer() re-raises it to whoever waits
            raise

    async def _run(self, item: dict[str, Any], rid: str) -> ToolCall:
        name = str(item.get("name"))
        call = ToolCall(name=name, call_id=str(item.get("call_id")),
                        arguments=str(item.get("arguments") or "{}"), response_id=rid)
        fn = self.functions[name]
        t0 = time.perf_counter()
        try:
            args = json.loads(call.arguments or "{}")
            if not isinstance(args, dict):
                raise TypeError(f"arguments must be a JSON object, not {type(args).__name__}")
            _check_arguments(name, fn, args)
            if inspect.iscoroutinefunction(fn):
                result = await fn(**args)
            elif self.thread:
                result = await asyncio.to_thread(fn, **args)
            else:
                result = fn(**args)
                if inspect.isawaitable(result):
                    result = await result
            call.result = result
            call.output = result if isinstance(result, str) else json.dumps(result, default=str)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the model hears about it instead of the app crashing
            call.error = f"{type(exc).__name__}: {exc}"
            call.output = json.dumps({"error": call.error})
        call.ms = (time.perf_counter() - t0) * 1000
        self.calls.append(call)
        with contextlib.suppress(Exception):
            self.session.events.marker("realtime_nb.tool_call", name=name, call_id=call.call_id,
                                       response_id=rid, ms=round(call.ms, 3), error=call.error)
        return call


def _check_arguments(name: str, fn: Callable[..., Any], args: dict[str, Any]) -> None:
    """Refuse argument names ``fn`` does not take, or required ones missing (a model's slip)."""
    params = inspect.signature(fn).parameters
    unknown = [k for k in args if k not in params]
    missing = [k for k, p in params.items() if p.default is p.empty and k not in args]
    problems = []
    if unknown:
        problems.append("unexpected argument(s) " + ", ".join(map(repr, unknown)))
    if missing:
        problems.append("missing required argument(s) " + ", ".join(map(repr, missing)))
    if problems:
        raise TypeError(f"{name}() got {' and '.join(problems)}; it takes "
                        f"{', '.join(params) or 'no arguments'}")


def _response_id(response: Any) -> str:
    if isinstance(response, str):
        return response
    if isinstance(response, Mapping):
        body = response.get("response") if "response" in response else response
        rid = body.get("id") if isinstance(body, Mapping) else None
    else:
        rid = getattr(response, "id", None)
    if not isinstance(rid, str):
        raise TypeError("answer() takes a ResponseState, a response.done event or a response id")
    return rid
