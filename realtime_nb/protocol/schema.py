"""A tiny schema compiler: wire-named dataclasses in, service-shaped validation out.

The protocol's types (session configuration, client events, items) are declared once, as plain
dataclasses whose attribute names are the wire names (see :mod:`realtime_nb.protocol.config` and
:mod:`realtime_nb.protocol.events`). This module turns such a class into a validator whose errors
read exactly like the Realtime service's (``unknown_parameter``, ``missing_required_parameter``,
``invalid_type``, ``invalid_value``, ``*_below_min_value`` / ``*_above_max_value``), each with the
dotted ``param`` path from the event root. The same declarations give typed objects to users
(``to_wire`` / ``from_wire``) and the field descriptions the notebook controls are generated from.

Rules the caller must know:

* Every field defaults to :data:`UNSET`; only fields that were set are serialised, so a dataclass
  instance is a *patch* (``session.update`` semantics). The service's own default lives in the field
  metadata (see :func:`fld`) and is used to build a full default configuration.
* ``None`` is JSON ``null`` and is only valid where the annotation allows ``None``.
* Validation stops at the first error, in document order: unknown keys of an object first, then
  missing required keys, then each present key in the order given.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

__all__ = [
    "UNSET",
    "FieldInfo",
    "Node",
    "ProtocolError",
    "Unset",
    "compile_schema",
    "default_of",
    "fields_of",
    "fld",
    "from_wire",
    "quote_list",
    "to_wire",
]


class Unset:
    """The type of :data:`UNSET`: 'this field was not given' (distinct from JSON null)."""

    _instance: Unset | None = None

    def __new__(cls) -> Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False

    def __copy__(self) -> Unset:
        return self

    def __deepcopy__(self, memo: object) -> Unset:
        return self


UNSET: Any = Unset()


@dataclass(frozen=True)
class ProtocolError(Exception):
    """A validation failure shaped like the service's ``error`` object.

    ``code``, ``message`` and ``param`` are exactly what the service puts in ``error``;
    ``type`` is the service's ``error.type``.
    """

    code: str
    message: str
    param: str | None = None
    type: str = "invalid_request_error"

    def __str__(self) -> str:
        return self.message

    def to_wire(self, event_id: str | None = None) -> dict[str, Any]:
        """The ``error`` object of an ``error`` server event."""
        return {
            "type": self.type,
            "code": self.code,
            "message": self.message,
            "param": self.param,
            "event_id": event_id,
        }


@dataclass(frozen=True)
class FieldInfo:
    """What a field means: the service default, a description, and limits (also used by UIs)."""

    default: Any = UNSET
    doc: str = ""
    ge: float | None = None
    le: float | None = None
    max_length: int | None = None
    required: bool = False
    check: Callable[[Any, str], None] | None = None


def fld(
    default: Any = UNSET,
    doc: str = "",
    *,
    ge: float | None = None,
    le: float | None = None,
    max_length: int | None = None,
    required: bool = False,
    check: Callable[[Any, str], None] | None = None,
) -> Any:
    """Declare a wire field: the instance default is always UNSET; ``default`` is the service's.

    ``check(value, path)`` may raise :class:`ProtocolError` for rules a type cannot express.
    """
    info = FieldInfo(default, doc, ge, le, max_length, required, check)
    return field(default=UNSET, metadata={"wire": info})


def quote_list(values: Iterable[Any]) -> str:
    """``'a', 'b', and 'c'`` / ``'a' and 'b'`` / ``'a'`` as the service lists supported values."""
    q = [f"'{v}'" for v in values]
    if len(q) <= 1:
        return "".join(q)
    if len(q) == 2:
        return f"{q[0]} and {q[1]}"
    return ", ".join(q[:-1]) + f", and {q[-1]}"


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _fmt_num(x: float) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_error(path: str, expected: str, value: Any) -> ProtocolError:
    return ProtocolError(
        "invalid_type",
        f"Invalid type for '{path}': expected {expected}, but got {_json_kind(value)} instead.",
        path,
    )


class Node:
    """A compiled schema node. ``validate(value, path)`` raises :class:`ProtocolError`."""

    expected: str = "a value"

    def validate(self, value: Any, path: str) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def accepts_type(self, value: Any) -> bool:
        """Whether ``value`` has the JSON type this node wants (used to pick union members)."""
        return True


class AnyNode(Node):
    expected = "a value"

    def validate(self, value: Any, path: str) -> None:
        return None


class StrNode(Node):
    expected = "a string"

    def __init__(self, max_length: int | None = None) -> None:
        self.max_length = max_length

    def accepts_type(self, value: Any) -> bool:
        return isinstance(value, str)

    def validate(self, value: Any, path: str) -> None:
        if not isinstance(value, str):
            raise _type_error(path, self.expected, value)
        if self.max_length is not None and len(value) > self.max_length:
            raise ProtocolError(
                "string_above_max_length",
                f"Invalid '{path}': string too long. Expected a string with maximum length "
                f"{self.max_length}, but got a string with length {len(value)} instead.",
                path,
            )


class EnumNode(Node):
    def __init__(self, values: tuple[Any, ...]) -> None:
        self.values = values
        self.expected = f"one of {', '.join(repr(v) for v in values)}"

    def accepts_type(self, value: Any) -> bool:
        return isinstance(value, str)

    def validate(self, value: Any, path: str) -> None:
        if not isinstance(value, str):
            raise _type_error(path, self.expected, value)
        if value not in self.values:
            if len(self.values) == 1:
                msg = f"Invalid value: '{value}'. Value must be '{self.values[0]}'."
            else:
                msg = f"Invalid value: '{value}'. Supported values are: {quote_list(self.values)}."
            raise ProtocolError("invalid_value", msg, path)


class BoolNode(Node):
    expected = "a boolean"

    def accepts_type(self, value: Any) -> bool:
        return isinstance(value, bool)

    def validate(self, value: Any, path: str) -> None:
        if not isinstance(value, bool):
            raise _type_error(path, self.expected, value)


class NumNode(Node):
    def __init__(self, integer: bool, ge: float | None, le: float | None) -> None:
        self.integer = integer
        self.ge = ge
        self.le = le
        self.expected = "an integer" if integer else "a number"

    def accepts_type(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if self.integer:
            return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        return isinstance(value, int | float)

    def validate(self, value: Any, path: str) -> None:
        if not self.accepts_type(value):
            raise _type_error(path, self.expected, value)
        kind = "integer" if self.integer else "decimal"
        if value != value or value in (float("inf"), float("-inf")):
            raise _type_error(path, self.expected, "nan")
        if self.ge is not None and value < self.ge:
            raise ProtocolError(
                f"{kind}_below_min_value",
                f"Invalid '{path}': {kind} below minimum value. Expected a value >= "
                f"{_fmt_num(self.ge)}, but got {_fmt_num(value)} instead.",
                path,
            )
        if self.le is not None and value > self.le:
            raise ProtocolError(
                f"{kind}_above_max_value",
                f"Invalid '{path}': {kind} above maximum value. Expected a value <= "
                f"{_fmt_num(self.le)}, but got {_fmt_num(value)} instead.",
                path,
            )


class ArrayNode(Node):
    expected = "an array"

    def __init__(self, item: Node) -> None:
        self.item = item

    def accepts_type(self, value: Any) -> bool:
        return isinstance(value, list | tuple)

    def validate(self, value: Any, path: str) -> None:
        if not isinstance(value, list | tuple):
            raise _type_error(path, self.expected, value)
        for i, v in enumerate(value):
            self.item.validate(v, f"{path}[{i}]")


class MapNode(Node):
    """A JSON object with free keys and values of one type (e.g. ``metadata``)."""

    expected = "an object"

    def __init__(self, value: Node) -> None:
        self.value = value

    def accepts_type(self, value: Any) -> bool:
        return isinstance(value, dict)

    def validate(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise _type_error(path, self.expected, value)
        for k, v in value.items():
            self.value.validate(v, _join(path, str(k)))


class ObjNode(Node):
    """A dataclass: closed set of wire keys."""

    expected = "an object"

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.fields: dict[str, tuple[Node, FieldInfo]] = {}
        self.check: Callable[[dict[str, Any], str], None] | None = getattr(cls, "__check__", None)

    def accepts_type(self, value: Any) -> bool:
        return isinstance(value, dict)

    def validate(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise _type_error(path, self.expected, value)
        for key in value:
            if key not in self.fields:
                p = _join(path, str(key))
                raise ProtocolError("unknown_parameter", f"Unknown parameter: '{p}'.", p)
        for key, (_node, info) in self.fields.items():
            if info.required and key not in value:
                p = _join(path, key)
                raise ProtocolError(
                    "missing_required_parameter", f"Missing required parameter: '{p}'.", p
                )
        for key, v in value.items():
            node, info = self.fields[key]
            p = _join(path, key)
            node.validate(v, p)
            if info.check is not None:
                info.check(v, p)
        if self.check is not None:
            self.check(value, path)


class NullableNode(Node):
    def __init__(self, inner: Node) -> None:
        self.inner = inner
        self.expected = f"{inner.expected} or null"

    def accepts_type(self, value: Any) -> bool:
        return value is None or self.inner.accepts_type(value)

    def validate(self, value: Any, path: str) -> None:
        if value is None:
            return
        if not self.inner.accepts_type(value):
            raise _type_error(path, self.expected, value)
        self.inner.validate(value, path)


class TaggedNode(Node):
    """A union of dataclasses told apart by their ``type`` literal."""

    expected = "an object"

    def __init__(self, variants: dict[str, ObjNode]) -> None:
        self.variants = variants

    def accepts_type(self, value: Any) -> bool:
        return isinstance(value, dict)

    def validate(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise _type_error(path, self.expected, value)
        p = _join(path, "type")
        if "type" not in value:
            raise ProtocolError(
                "missing_required_parameter", f"Missing required parameter: '{p}'.", p
            )
        tag = value["type"]
        if not isinstance(tag, str):
            raise _type_error(p, "a string", tag)
        if tag not in self.variants:
            raise ProtocolError(
                "invalid_value",
                f"Invalid value: '{tag}'. Supported values are: {quote_list(self.variants)}.",
                p,
            )
        self.variants[tag].validate(value, path)


class AnyOfNode(Node):
    """A union of differently-typed alternatives (e.g. ``"auto"`` or an object)."""

    def __init__(self, options: list[Node]) -> None:
        self.options = options
        self.expected = " or ".join(dict.fromkeys(o.expected for o in options))

    def accepts_type(self, value: Any) -> bool:
        return any(o.accepts_type(value) for o in self.options)

    def validate(self, value: Any, path: str) -> None:
        candidates = [o for o in self.options if o.accepts_type(value)]
        if not candidates:
            raise _type_error(path, self.expected, value)
        first: ProtocolError | None = None
        for o in candidates:
            try:
                o.validate(value, path)
                return
            except ProtocolError as e:
                first = first or e
        assert first is not None
        raise first


_CACHE: dict[Any, Node] = {}


def _is_unset(t: Any) -> bool:
    return t is Unset


def _tag_of(cls: object) -> str | None:
    hints = get_type_hints(cls)
    t = hints.get("type")
    if t is None:
        return None
    args = [a for a in get_args(t) if not _is_unset(a)] if _is_union(t) else [t]
    for a in args:
        if get_origin(a) is Literal and len(get_args(a)) == 1:
            return str(get_args(a)[0])
    return None


def _is_union(t: Any) -> bool:
    return get_origin(t) in (Union, types.UnionType)


def compile_schema(tp: Any, info: FieldInfo | None = None) -> Node:
    """Compile a type annotation (usually a dataclass) into a validator :class:`Node`.

    Thread-safe: a dataclass's node enters the cache before its fields are compiled (to allow
    recursion), so compiling holds a lock that other threads wait on instead of seeing a node
    with no fields yet (which rejected every field as unknown).
    """
    info = info or FieldInfo()
    with _COMPILE_LOCK:
        if info.ge is None and info.le is None and info.max_length is None and tp in _CACHE:
            return _CACHE[tp]
        node = _compile(tp, info)
        if info.ge is None and info.le is None and info.max_length is None:
            with contextlib.suppress(TypeError):
                _CACHE[tp] = node
        return node


_COMPILE_LOCK = threading.RLock()


def _compile(tp: Any, info: FieldInfo) -> Node:
    if tp is Any or tp is object:
        return AnyNode()
    if tp is str:
        return StrNode(info.max_length)
    if tp is bool:
        return BoolNode()
    if tp is int:
        return NumNode(True, info.ge, info.le)
    if tp is float:
        return NumNode(False, info.ge, info.le)
    origin = get_origin(tp)
    if origin is Literal:
        return EnumNode(get_args(tp))
    if origin in (list, tuple, typing.Sequence):
        return ArrayNode(compile_schema(get_args(tp)[0]))
    if origin is dict:
        return MapNode(compile_schema(get_args(tp)[1]))
    if _is_union(tp):
        args = [a for a in get_args(tp) if not _is_unset(a)]
        nullable = type(None) in args
        args = [a for a in args if a is not type(None)]
        if len(args) == 1:
            inner = _compile(args[0], info)
        elif all(dataclasses.is_dataclass(a) and _tag_of(a) for a in args):
            # ignored below: each _tag_of(a) is a str (tested just above) and compile_schema()
            # of a dataclass returns an ObjNode; the checker can tell neither
            inner = TaggedNode({_tag_of(a): compile_schema(a) for a in args})  # type: ignore[misc]
        else:
            opts: list[Node] = []
            tagged = [a for a in args if dataclasses.is_dataclass(a) and _tag_of(a)]
            rest = [a for a in args if a not in tagged]
            opts.extend(_compile(a, info) for a in rest)
            if len(tagged) > 1:
                # ignored below: as above (tagged holds dataclasses that have a tag)
                opts.append(TaggedNode({_tag_of(a): compile_schema(a) for a in tagged}))  # type: ignore[misc]
            elif tagged:
                opts.append(compile_schema(tagged[0]))
            inner = AnyOfNode(opts)
        return NullableNode(inner) if nullable else inner
    if dataclasses.is_dataclass(tp):
        node = ObjNode(tp)  # type: ignore[arg-type]  # tp is a class, not an instance
        _CACHE[tp] = node  # allow recursion
        hints = get_type_hints(tp)
        for f in dataclasses.fields(tp):
            finfo: FieldInfo = f.metadata.get("wire", FieldInfo())
            node.fields[f.name] = (compile_schema(hints[f.name], finfo), finfo)
        return node
    raise TypeError(f"cannot compile {tp!r}")


def fields_of(cls: type) -> list[tuple[str, Any, FieldInfo]]:
    """``(wire name, annotation, FieldInfo)`` for each field of a wire dataclass (for UIs)."""
    hints = get_type_hints(cls)
    return [
        (f.name, hints[f.name], f.metadata.get("wire", FieldInfo()))
        for f in dataclasses.fields(cls)
    ]


def to_wire(obj: Any) -> Any:
    """Serialise a wire dataclass (or nested lists/dicts of them) to JSON-ready data.

    Fields left :data:`UNSET` are omitted; ``None`` becomes JSON null. A ``type`` field that
    can only hold one value (``SessionConfig``'s ``"realtime"``, ``FunctionTool``'s
    ``"function"``, ``ServerVad``'s ``"server_vad"`` ...) is always written, so
    ``SessionConfig(instructions="Be brief.")`` is a valid ``session.update`` patch.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if v is UNSET:
                if f.name == "type" and (tag := _tag_of(type(obj))) is not None:
                    out["type"] = tag  # a one-value discriminator is never left out
                continue
            out[f.name] = to_wire(v)
        return out
    if isinstance(obj, list | tuple):
        return [to_wire(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_wire(v) for k, v in obj.items()}
    return obj


def from_wire(tp: Any, data: Any) -> Any:
    """Build typed objects from validated wire data (the inverse of :func:`to_wire`)."""
    if data is None:
        return None
    if dataclasses.is_dataclass(tp) and isinstance(data, dict):
        hints = get_type_hints(tp)
        kwargs = {
            f.name: from_wire(hints[f.name], data[f.name])
            for f in dataclasses.fields(tp)
            if f.name in data
        }
        return tp(**kwargs)  # type: ignore[operator]  # tp is a class, not an instance
    origin = get_origin(tp)
    if _is_union(tp):
        args = [a for a in get_args(tp) if not _is_unset(a) and a is not type(None)]
        if isinstance(data, dict):
            dcs = [a for a in args if dataclasses.is_dataclass(a)]
            tag = data.get("type")
            for a in dcs:
                if _tag_of(a) == tag:
                    return from_wire(a, data)
            if len(dcs) == 1:
                return from_wire(dcs[0], data)
        return data
    if origin in (list, tuple) and isinstance(data, list):
        return [from_wire(get_args(tp)[0], v) for v in data]
    return data


def default_of(cls: type) -> dict[str, Any]:
    """The service's full default for a wire dataclass: every field that has a service default."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        info: FieldInfo = f.metadata.get("wire", FieldInfo())
        if info.default is not UNSET:
            d = info.default
            out[f.name] = d() if callable(d) else d
    return out
