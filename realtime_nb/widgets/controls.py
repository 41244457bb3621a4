"""``SessionControls``: live session settings, generated from the typed configuration.

The controls are not written by hand: :data:`LIVE_FIELDS` names which fields of the wire
dataclasses of :mod:`realtime_nb.protocol.config` are edited live, and every control — its kind,
options, limits, default and tooltip — comes from the field's annotation and ``FieldInfo``
(:func:`realtime_nb.protocol.schema.fields_of`). A field whose annotation is a union of wire
objects (``turn_detection: ServerVad | SemanticVad | None``) becomes a selector (the variants'
``type`` tags, plus ``off`` for ``None``) with one generated control per field of each variant;
add a field to ``ServerVad`` and a control appears.

Annotation → control:

* ``Literal[...]`` → dropdown (``| None``: an ``off`` option; a field whose service default is
  "not set": a ``default`` option that leaves it out);
* ``float`` with ``ge``/``le`` → slider (rounded to the slider step, so that no value carries
  binary noise such as 0.7000000000000001: the service rejects more than 16 decimals);
* ``int`` with ``ge``/``le`` → slider (10 ms steps for ``*_ms``); ``int | None`` → slider plus an
  ``off`` box;
* ``bool`` → checkbox; ``str`` → text (a text area when the default is a sentence), a combobox
  when :data:`SUGGESTIONS` lists values for it;
* ``list[Literal[...]]`` whose check allows one value (``output_modalities``) → dropdown.
  Other annotations (free lists, objects of code-only shape like a custom ``VoiceId``) have no
  control: set them with ``session.update``.

Applying (what the caller must know): a change sends ``session.update`` with the changed field
(or, for a wire object, the whole object as the controls show it) as a background task — the
kernel is never held. Next to the control, ``applying…`` becomes ``✓`` with the server's echo, or
``✗`` with the service's message and the hint; either way every control then re-syncs to
``session.config`` (the server's last echo), so a refused change snaps back. Any other
``session.updated`` (from code, a reconnect) re-syncs the controls through :meth:`sync`.
"""

from __future__ import annotations

import asyncio
import html
import types
import typing
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, is_dataclass
from typing import Any, Literal, get_args, get_origin

import ipywidgets as widgets

from realtime_nb.client.errors import RealtimeError
from realtime_nb.protocol.config import (
    TRANSCRIPTION_MODELS,
    AudioInput,
    AudioOutput,
    SessionConfig,
    Transcription,
    default_session,
)
from realtime_nb.protocol.schema import UNSET, FieldInfo, Unset, fields_of

from ._affinity import LoopAffinity

__all__ = ["LIVE_FIELDS", "SUGGESTIONS", "ControlSpec", "SessionControls", "control_specs"]

#: Which configuration fields are edited live: (section title, wire class, wire path of that
#: class's object in ``session``, field names). Only the choice of fields lives here; what each
#: control is comes from the field's annotation and metadata.
LIVE_FIELDS: tuple[tuple[str, type, tuple[str, ...], tuple[str, ...]], ...] = (
    ("Turn detection", AudioInput, ("audio", "input"), ("turn_detection",)),
    ("Response", SessionConfig, (), ("instructions", "output_modalities")),
    ("Voice", AudioOutput, ("audio", "output"), ("voice", "speed")),
    ("Input transcription", AudioInput, ("audio", "input"), ("transcription",)),
    ("Noise reduction", AudioInput, ("audio", "input"), ("noise_reduction",)),
)

#: Known values offered for free-text fields (a combobox; other values can still be typed).
SUGGESTIONS: dict[tuple[type, str], Sequence[str]] = {
    (Transcription, "model"): TRANSCRIPTION_MODELS,
}

#: Dropdown values standing for JSON null and for "leave the field out".
OFF = "__off__"
DEFAULT = "__default__"
ON = "__on__"

Kind = Literal["enum", "float", "int", "bool", "text", "longtext", "combo", "one_of_list"]
Runner = Callable[[str, Callable[[], Coroutine[Any, Any, Any]]], Any]


@dataclass(frozen=True)
class ControlSpec:
    """One generated control: where its value lives on the wire and how it is edited.

    ``key`` names it (``"audio.input.turn_detection[server_vad].threshold"``; a variant selector
    is the object's path, ``"audio.input.turn_detection"``). ``path`` is the wire path of the
    object holding the field, ``variant`` the ``type`` tag (or ``"on"`` for an untagged object)
    when the field belongs to one variant of a union, ``name`` the wire name (None for a
    selector). ``options`` are the dropdown values; ``nullable`` adds ``off`` (JSON null),
    ``optional`` a ``default`` option / empty text meaning "not sent".
    """

    key: str
    path: tuple[str, ...]
    name: str | None
    kind: Kind | Literal["variant"]
    info: FieldInfo
    variant: str | None = None
    options: tuple[Any, ...] = ()
    nullable: bool = False
    optional: bool = False
    section: str = ""
    variants: tuple[tuple[str, type], ...] = field(default=())


def _strip_unset(tp: Any) -> tuple[list[Any], bool]:
    """Union members other than Unset, and whether None is one of them."""
    if get_origin(tp) in (typing.Union, types.UnionType):
        members = [a for a in get_args(tp) if a is not Unset]
    else:
        members = [tp]
    nullable = type(None) in members
    return [a for a in members if a is not type(None)], nullable


def _literal_values(tp: Any) -> tuple[Any, ...] | None:
    return tuple(get_args(tp)) if get_origin(tp) is Literal else None


def _scalar_kind(cls: type, name: str, tp: Any, info: FieldInfo
                 ) -> tuple[Kind, tuple[Any, ...], bool] | None:
    """(kind, options, nullable) for a scalar field, or None when it has no generated control."""
    members, nullable = _strip_unset(tp)
    literals = [v for m in members if (vals := _literal_values(m)) for v in vals]
    if literals and all(_literal_values(m) is not None or is_dataclass(m) for m in members):
        # Literal values, possibly beside a code-only object form (a custom VoiceId): a dropdown.
        return "enum", tuple(literals), nullable
    if len(members) != 1:
        return None
    (m,) = members
    if m is bool:
        return "bool", (), nullable
    if m is int and info.ge is not None and info.le is not None:
        return "int", (), nullable
    if m is float and info.ge is not None and info.le is not None:
        return "float", (), nullable
    if m is str and not nullable:
        if (cls, name) in SUGGESTIONS:
            return "combo", tuple(SUGGESTIONS[(cls, name)]), False
        default = info.default
        long = isinstance(default, str) and (len(default) > 40 or " " in default)
        return ("longtext" if long else "text"), (), False
    if get_origin(m) is list and info.check is not None:
        (item,) = get_args(m) or (None,)
        values = _literal_values(item)
        if values:
            return "one_of_list", values, False
    return None


def _variant_tag(cls: type) -> str | None:
    """The single ``type`` literal of a wire class (its tag in a tagged union), if any."""
    for name, tp, _info in fields_of(cls):
        if name == "type":
            members, _ = _strip_unset(tp)
            values = [v for m in members for v in (_literal_values(m) or ())]
            if len(values) == 1:
                return str(values[0])
    return None


def _wire_classes(tp: Any) -> tuple[list[type], bool]:
    members, nullable = _strip_unset(tp)
    classes = [m for m in members if isinstance(m, type) and is_dataclass(m)]
    return (classes, nullable) if classes and len(classes) == len(members) else ([], nullable)


def control_specs(live_fields: Iterable[tuple[str, type, tuple[str, ...], tuple[str, ...]]]
                  = LIVE_FIELDS) -> list[ControlSpec]:
    """The controls for ``live_fields`` (default :data:`LIVE_FIELDS`), in display order.

    Fields of variant classes that have no generated control (see the module docstring) are
    left out; a variant's ``type`` tag is its selector value, not a control.
    """
    specs: list[ControlSpec] = []
    for section, cls, path, names in live_fields:
        hints = {n: (tp, info) for n, tp, info in fields_of(cls)}
        for name in names:
            tp, info = hints[name]
            classes, nullable = _wire_classes(tp)
            if not classes:
                kind = _scalar_kind(cls, name, tp, info)
                if kind is None:
                    raise TypeError(f"{cls.__name__}.{name} has no control kind: {tp}")
                k, options, null = kind
                specs.append(ControlSpec(
                    ".".join((*path, name)), path, name, k, info, options=options,
                    nullable=null, optional=info.default is UNSET, section=section))
                continue
            obj_path = (*path, name)
            tagged = [(tag, c) for c in classes if (tag := _variant_tag(c)) is not None]
            variants = tuple(tagged) if len(tagged) == len(classes) else ((ON, classes[0]),)
            specs.append(ControlSpec(
                ".".join(obj_path), obj_path, None, "variant", info,
                options=tuple(t for t, _ in variants), nullable=nullable, section=section,
                variants=variants))
            for tag, vcls in variants:
                for fname, ftp, finfo in fields_of(vcls):
                    if fname == "type" and tag != ON:
                        continue
                    kind = _scalar_kind(vcls, fname, ftp, finfo)
                    if kind is None:
                        continue
                    k, options, null = kind
                    label = "on" if tag == ON else tag
                    specs.append(ControlSpec(
                        f"{'.'.join(obj_path)}[{label}].{fname}", obj_path, fname, k, finfo,
                        variant=tag, options=options, nullable=null,
                        optional=finfo.default is UNSET, section=section))
    return specs


# --------------------------------------------------------------------------- wire helpers
_MISSING: Any = object()


def _get(config: Mapping[str, Any] | None, path: Sequence[str]) -> Any:
    node: Any = config
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _nest(path: Sequence[str], value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {path[-1]: value}
    for part in reversed(path[:-1]):
        out = {part: out}
    return out


def _short(value: Any, limit: int = 48) -> str:
    text = "null" if value is None else repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- the widget
class SessionControls(widgets.VBox):  # type: ignore[misc]  # ipywidgets is untyped: VBox is Any
    """Live controls of a Session's configuration (see the module docstring).

    Args:
        session: the :class:`~realtime_nb.Session` to edit (None: show the defaults; call
            :meth:`attach` later).
        run: how to run an update: ``run(label, coroutine_function)``. The panel passes its
            ordered outbox; default: a task on the running event loop.
        live_fields: which fields get controls (default :data:`LIVE_FIELDS`).

    Attributes: ``specs`` (key → :class:`ControlSpec`), ``inputs`` (key → the input widget),
    ``notes`` (key → the HTML beside it showing the echo or the error), ``errors`` (the
    :class:`RealtimeError` of each refused change, in order), ``applied`` (the accepted
    patches), ``syncing`` (True while :meth:`sync` sets the controls: value observers can tell a
    re-sync from a person's change).
    """

    def __init__(self, session: Any = None, *, run: Runner | None = None,
                 live_fields: Iterable[tuple[str, type, tuple[str, ...], tuple[str, ...]]]
                 = LIVE_FIELDS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_class("rtnb-controls")
        #: Browser changes may arrive on a kernel subshell thread: apply them on this loop.
        self._affinity = LoopAffinity()
        self.session = session
        self._run: Runner = run or _run_on_loop
        self.specs: dict[str, ControlSpec] = {s.key: s for s in control_specs(live_fields)}
        self.inputs: dict[str, widgets.Widget] = {}
        self.notes: dict[str, widgets.HTML] = {}
        self._off_boxes: dict[str, widgets.Checkbox] = {}
        self._variant_boxes: dict[str, dict[str, widgets.VBox]] = {}
        self.errors: list[RealtimeError] = []
        self.applied: list[dict[str, Any]] = []
        self.syncing = False
        self._shown = False
        sections: dict[str, list[widgets.Widget]] = {}
        for spec in self.specs.values():
            row = self._build(spec)
            if spec.variant is not None:
                box = self._variant_boxes.setdefault(spec.key.split("[")[0], {})
                vbox = box.get(spec.variant)
                if vbox is None:
                    vbox = box[spec.variant] = widgets.VBox(
                        layout=widgets.Layout(margin="0 0 0 12px"))
                    vbox.add_class("rtnb-ctl-variant")
                    sections.setdefault(spec.section, []).append(vbox)
                vbox.children = (*vbox.children, row)
            else:
                sections.setdefault(spec.section, []).append(row)
        titles = list(sections)
        self.accordion = widgets.Accordion(
            children=[widgets.VBox(sections[t]) for t in titles], titles=tuple(titles),
            selected_index=0)
        self.children = (self.accordion,)
        self.sync()

    # ------------------------------------------------------------------ building
    def _build(self, spec: ControlSpec) -> widgets.Widget:
        info = spec.info
        tip = info.doc or (spec.name or spec.key)
        label = widgets.HTML(
            f'<span title="{html.escape(tip)}">{html.escape(spec.name or spec.path[-1])}</span>',
            layout=widgets.Layout(width="150px", min_width="150px"))
        label.add_class("rtnb-ctl-label")
        control: widgets.Widget
        wide = widgets.Layout(width="auto", flex="1 1 auto", min_width="120px")
        if spec.kind == "variant":
            opts = [("on" if t == ON else t, t) for t in spec.options]
            if spec.nullable:
                opts.insert(0, ("off", OFF))
            control = widgets.Dropdown(options=opts, layout=wide)
        elif spec.kind == "enum" or spec.kind == "one_of_list":
            opts = [(str(v), v) for v in spec.options]
            if spec.nullable:
                opts.insert(0, ("off", OFF))
            if spec.optional:
                opts.insert(0, ("(default)", DEFAULT))
            control = widgets.Dropdown(options=opts, layout=wide)
        elif spec.kind == "bool":
            control = widgets.Checkbox(indent=False, layout=widgets.Layout(width="auto"))
        elif spec.kind == "float":
            step = _float_step(info)
            control = widgets.FloatSlider(min=info.ge, max=info.le, step=step,
                                          continuous_update=False, readout_format=".2f",
                                          layout=wide)
        elif spec.kind == "int":
            step = 10 if (spec.name or "").endswith("_ms") else 1
            control = widgets.IntSlider(min=int(info.ge or 0), max=int(info.le or 0), step=step,
                                        continuous_update=False, layout=wide)
        elif spec.kind == "combo":
            control = widgets.Combobox(options=list(spec.options), ensure_option=False,
                                       continuous_update=False, layout=wide)
        elif spec.kind == "longtext":
            control = widgets.Textarea(continuous_update=False, rows=3, layout=wide)
        else:
            control = widgets.Text(continuous_update=False, layout=wide,
                                   placeholder="(not set)" if spec.optional else "")
        control.add_class("rtnb-ctl")
        control.add_class("rtnb-ctl-" + _css_key(spec.key))
        control.observe(self._affinity.wrap(lambda _ch, key=spec.key: self._changed(key)),
                        names="value")
        self.inputs[spec.key] = control
        parts: list[widgets.Widget] = [label, control]
        if spec.nullable and spec.kind not in ("variant", "enum"):
            off = widgets.Checkbox(description="off", indent=False,
                                   layout=widgets.Layout(width="auto"))
            off.add_class("rtnb-ctl-off")
            off.observe(self._affinity.wrap(lambda _ch, key=spec.key: self._changed(key)),
                        names="value")
            self._off_boxes[spec.key] = off
            parts.append(off)
        note = widgets.HTML("", layout=widgets.Layout(margin="0 0 0 150px"))
        note.add_class("rtnb-ctl-note")
        self.notes[spec.key] = note
        row = widgets.VBox([widgets.HBox(parts, layout=widgets.Layout(align_items="center")),
                            note])
        row.add_class("rtnb-ctl-row")
        return row

    # ------------------------------------------------------------------ reading / syncing
    @property
    def config(self) -> dict[str, Any]:
        """The configuration shown: the server's last echo, or the defaults before connect."""
        cfg = getattr(self.session, "config", None) if self.session is not None else None
        return cfg if isinstance(cfg, dict) else default_session()

    def attach(self, session: Any) -> None:
        """Edit ``session`` from now on (and show its configuration)."""
        self.session = session
        self.sync()

    def sync(self) -> None:
        """Set every control to the configuration the server last echoed (no update is sent)."""
        cfg = self.config
        self.syncing = True
        try:
            for spec in self.specs.values():
                self._show(spec, cfg)
        finally:
            self.syncing = False
        self._shown = True
        self._show_variants()

    def _show(self, spec: ControlSpec, cfg: Mapping[str, Any]) -> None:
        control = self.inputs[spec.key]
        if spec.kind == "variant":
            obj = _get(cfg, spec.path)
            if obj is None or obj is _MISSING:
                value: Any = OFF if spec.nullable else spec.options[0]
            elif spec.options == (ON,):
                value = ON
            else:
                value = obj.get("type") if isinstance(obj, Mapping) else spec.options[0]
                if value not in spec.options:
                    value = spec.options[0]
            control.value = value
            return
        if spec.variant is None:
            raw = _get(cfg, (*spec.path, spec.name or ""))
        else:
            obj = _get(cfg, spec.path)
            active = isinstance(obj, Mapping) and (
                spec.variant == ON or obj.get("type") == spec.variant)
            if not active and self._shown:
                return  # a variant that is off keeps what was typed into it until chosen
            raw = obj.get(spec.name, _MISSING) if active else _MISSING
        if raw is _MISSING:
            raw = spec.info.default
            if callable(raw):
                raw = raw()
        control.value = self._to_control(spec, raw)
        off = self._off_boxes.get(spec.key)
        if off is not None:
            off.value = raw is None
            control.disabled = raw is None

    def _to_control(self, spec: ControlSpec, raw: Any) -> Any:
        kind = spec.kind
        if kind in ("enum", "one_of_list"):
            if kind == "one_of_list" and isinstance(raw, list | tuple):
                raw = raw[0] if raw else UNSET
            if raw is None:
                return OFF if spec.nullable else spec.options[0]
            if raw is UNSET:
                return DEFAULT if spec.optional else spec.options[0]
            return raw if raw in spec.options else (DEFAULT if spec.optional else spec.options[0])
        if kind == "bool":
            return bool(raw) if raw is not UNSET else False
        if kind == "float":
            lo, hi = float(spec.info.ge or 0), float(spec.info.le or 0)
            return min(hi, max(lo, float(raw))) if isinstance(raw, int | float) else lo
        if kind == "int":
            lo, hi = int(spec.info.ge or 0), int(spec.info.le or 0)
            return min(hi, max(lo, int(raw))) if isinstance(raw, int | float) else lo
        return raw if isinstance(raw, str) else ""

    def _show_variants(self) -> None:
        for key, boxes in self._variant_boxes.items():
            chosen = self.inputs[key].value
            for tag, box in boxes.items():
                box.layout.display = "" if tag == chosen else "none"

    # ------------------------------------------------------------------ applying
    def _value(self, spec: ControlSpec) -> Any:
        """The wire value a control shows (UNSET: leave the field out)."""
        control = self.inputs[spec.key]
        off = self._off_boxes.get(spec.key)
        if off is not None and off.value:
            return None
        v = control.value
        if spec.kind in ("enum", "one_of_list"):
            if v == OFF:
                return None
            if v == DEFAULT:
                return UNSET
            return [v] if spec.kind == "one_of_list" else v
        if spec.kind == "float":
            return round(float(v), _decimals(control.step))
        if spec.kind in ("text", "combo", "longtext"):
            return v if (v or not spec.optional) else UNSET
        return v

    def _object_value(self, key: str) -> Any:
        """The whole wire object a variant selector and its controls describe (None: off)."""
        spec = self.specs[key]
        chosen = self.inputs[key].value
        if chosen == OFF:
            return None
        obj: dict[str, Any] = {} if chosen == ON else {"type": chosen}
        for sub in self.specs.values():
            if sub.variant == chosen and sub.path == spec.path:
                value = self._value(sub)
                if value is not UNSET:
                    obj[sub.name or ""] = value
        return obj

    def patch_for(self, key: str) -> dict[str, Any]:
        """The ``session`` patch that applying control ``key`` sends."""
        spec = self.specs[key]
        if spec.kind == "variant" or spec.variant is not None:
            obj_key = ".".join(spec.path)
            return _nest(spec.path, self._object_value(obj_key))
        value = self._value(spec)
        if value is UNSET:
            value = ""
        return _nest((*spec.path, spec.name or ""), value)

    def _changed(self, key: str) -> None:
        if self.syncing:
            return
        spec = self.specs[key]
        off = self._off_boxes.get(key)
        if off is not None:
            self.inputs[key].disabled = bool(off.value)
        if spec.kind == "variant":
            self._show_variants()
        elif spec.variant is not None and self.inputs[".".join(spec.path)].value != spec.variant:
            label = "on" if spec.variant == ON else spec.variant
            self._note(key, f"sent when {spec.path[-1]} is {label}", "pending")
            return
        patch = self.patch_for(key)
        self._note(key, "applying…", "pending")
        self._run(f"session.update ({key})", lambda: self.apply(key, patch))

    async def apply(self, key: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        """Send ``patch`` for control ``key``; show the echo or the error next to it.

        Returns the ``session.updated`` event, or None when it was refused (the error is in
        :attr:`errors`, and shown).
        """
        if self.session is None:
            self._note(key, "no session", "error")
            return None
        try:
            reply = await self.session.update(patch)
        except RealtimeError as err:
            self.errors.append(err)
            text = f"✗ {err.message}"
            if err.hint:
                text += f" — {err.hint}"
            self._note(key, text, "error")
            self.sync()
            return None
        self.applied.append(patch)
        self.sync()
        if reply.get("type") != "session.updated":
            self._note(key, "queued: sent when the session connects", "pending")
            return reply
        spec = self.specs[key]
        echo = _get(self.config, spec.path if spec.name is None or spec.variant is not None
                    else (*spec.path, spec.name))
        if spec.variant is not None and isinstance(echo, Mapping):
            echo = echo.get(spec.name or "", _MISSING)
        shown = "" if echo is _MISSING else f" server: {_short(echo)}"
        self._note(key, f"✓{shown}", "ok")
        return reply

    def _note(self, key: str, text: str, kind: str) -> None:
        note = self.notes[key]
        note.value = f'<span class="rtnb-note-{kind}">{html.escape(text)}</span>'


def _float_step(info: FieldInfo) -> float:
    span = float(info.le or 0) - float(info.ge or 0)
    return 0.01 if span <= 2 else 0.05


def _decimals(step: float) -> int:
    text = f"{step:.10f}".rstrip("0")
    return max(0, len(text.split(".")[1])) if "." in text else 0


def _css_key(key: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in key).strip("-")


def _run_on_loop(label: str, fn: Callable[[], Coroutine[Any, Any, Any]]) -> asyncio.Task[Any]:
    """Default runner: a task on the running loop (the kernel's)."""
    task = asyncio.get_running_loop().create_task(fn(), name=f"realtime_nb: {label}")
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)
    return task


_TASKS: set[asyncio.Task[Any]] = set()
