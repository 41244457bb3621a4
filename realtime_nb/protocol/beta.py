"""The retired beta dialect, translated at the edges (never inside the protocol core).

:class:`BetaTranslator` turns beta client events into GA ones (flat session fields → nested
``audio.input`` / ``audio.output``, ``modalities`` → ``output_modalities``, string formats → format
objects, ``transcription_session.update`` → ``session.update`` of type ``transcription``) and GA
server events back into beta names (``response.output_audio.delta`` → ``response.audio.delta``,
``conversation.item.added`` → ``conversation.item.created``, content ``output_audio`` → ``audio``
...). :func:`ga_event_name` does the inverse renaming for old traces.

Errors keep the beta path in ``param`` so beta clients read the message they always got.
"""

from __future__ import annotations

import copy
from typing import Any

from .config import AUDIO_SETTING_PATHS
from .schema import ProtocolError, quote_list

__all__ = ["BETA_FORMATS", "BETA_TO_GA_EVENTS", "BetaTranslator", "ga_event_name"]

BETA_TO_GA_EVENTS = {
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
    "conversation.item.created": "conversation.item.added",
}
_GA_TO_BETA_EVENTS = {v: k for k, v in BETA_TO_GA_EVENTS.items()}

#: Beta format strings → the GA format object.
BETA_FORMATS: dict[str, dict[str, Any]] = {
    "pcm16": {"type": "audio/pcm", "rate": 24000},
    "g711_ulaw": {"type": "audio/pcmu"},
    "g711_alaw": {"type": "audio/pcma"},
}
_FORMATS = BETA_FORMATS
_FORMAT_NAMES = {"audio/pcm": "pcm16", "audio/pcmu": "g711_ulaw", "audio/pcma": "g711_alaw"}

# beta flat field -> GA path under session
_SESSION_FIELDS: dict[str, tuple[str, ...]] = {
    "voice": AUDIO_SETTING_PATHS["voice"],
    "speed": AUDIO_SETTING_PATHS["speed"],
    "input_audio_format": AUDIO_SETTING_PATHS["input_format"],
    "output_audio_format": AUDIO_SETTING_PATHS["output_format"],
    "input_audio_transcription": AUDIO_SETTING_PATHS["transcription"],
    "input_audio_noise_reduction": AUDIO_SETTING_PATHS["noise_reduction"],
    "turn_detection": AUDIO_SETTING_PATHS["turn_detection"],
    "max_response_output_tokens": ("max_output_tokens",),
    "instructions": ("instructions",),
    "tools": ("tools",),
    "tool_choice": ("tool_choice",),
    "model": ("model",),
    "tracing": ("tracing",),
    "truncation": ("truncation",),
    "prompt": ("prompt",),
    "include": ("include",),
}
_RESPONSE_FIELDS: dict[str, tuple[str, ...]] = {
    "voice": ("audio", "output", "voice"),
    "output_audio_format": ("audio", "output", "format"),
    "max_response_output_tokens": ("max_output_tokens",),
    "max_output_tokens": ("max_output_tokens",),
    "instructions": ("instructions",),
    "tools": ("tools",),
    "tool_choice": ("tool_choice",),
    "conversation": ("conversation",),
    "metadata": ("metadata",),
    "input": ("input",),
}


def ga_event_name(name: str) -> str:
    """The GA name of a (possibly beta) server event type."""
    return BETA_TO_GA_EVENTS.get(name, name)


def _put(d: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        d = d.setdefault(key, {})
    d[path[-1]] = value


def _format(value: Any, param: str) -> Any:
    if isinstance(value, str) and value in _FORMATS:
        return copy.deepcopy(_FORMATS[value])
    if isinstance(value, str):
        raise ProtocolError(
            "invalid_value",
            f"Invalid value: '{value}'. Supported values are: {quote_list(_FORMATS)}.", param)
    raise ProtocolError(
        "invalid_type",
        f"Invalid type for '{param}': expected one of 'pcm16','g711_ulaw','g711_alaw', but got "
        f"{'an object' if isinstance(value, dict) else 'a ' + type(value).__name__} instead.",
        param,
    )


def _modalities(value: Any, param: str) -> list[str]:
    if (not isinstance(value, list) or not all(isinstance(v, str) for v in value)
            or sorted(value) not in (["text"], ["audio", "text"])):
        raise ProtocolError(
            "invalid_value",
            f"Invalid modalities: {value!r}. Supported combinations are: ['text'] and "
            "['audio', 'text'].",
            param,
        )
    return ["text"] if value == ["text"] else ["audio"]


def _temperature(value: Any, param: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError("invalid_type", f"Invalid type for '{param}': expected a number.",
                            param)
    if value < 0.6:
        raise ProtocolError(
            "decimal_below_min_value",
            f"Invalid '{param}': decimal below minimum value. Expected a value >= 0.6, but got "
            f"{value} instead.", param)
    if value > 1.2:
        raise ProtocolError(
            "decimal_above_max_value",
            f"Invalid '{param}': decimal above maximum value. Expected a value <= 1.2, but got "
            f"{value} instead.", param)


class BetaTranslator:
    """Translate one beta connection's events in both directions (keeps per-connection state)."""

    def __init__(self) -> None:
        self.kind = "realtime"

    # ---------------------------------------------------------------- client -> GA
    def client_event(self, event: Any) -> Any:
        if not isinstance(event, dict):
            return event
        etype = event.get("type")
        if etype == "session.update":
            return self._session_update(event, "realtime")
        if etype == "transcription_session.update":
            self.kind = "transcription"
            return self._session_update(event, "transcription")
        if etype == "response.create" and isinstance(event.get("response"), dict):
            out = dict(event)
            out["response"] = self._response(event["response"])
            return out
        if etype == "conversation.item.create" and isinstance(event.get("item"), dict):
            out = dict(event)
            out["item"] = self._item_in(event["item"])
            return out
        return event

    def _session_update(self, event: dict[str, Any], kind: str) -> dict[str, Any]:
        session = event.get("session")
        out = {k: v for k, v in event.items() if k not in ("session", "type")}
        out["type"] = "session.update"
        if not isinstance(session, dict):
            out["session"] = session
            return out
        ga: dict[str, Any] = {"type": kind}
        for key, value in session.items():
            param = f"session.{key}"
            if key == "modalities":
                if kind == "realtime":
                    ga["output_modalities"] = _modalities(value, param)
            elif key == "temperature":
                _temperature(value, param)
            elif key in ("input_audio_format", "output_audio_format"):
                _put(ga, _SESSION_FIELDS[key], _format(value, param))
            elif key == "turn_detection" and isinstance(value, dict):
                td = {k: v for k, v in value.items()}
                _put(ga, _SESSION_FIELDS[key], td)
            elif key in _SESSION_FIELDS:
                _put(ga, _SESSION_FIELDS[key], copy.deepcopy(value))
            else:
                raise ProtocolError("unknown_parameter", f"Unknown parameter: '{param}'.", param)
        if kind == "transcription" and "audio" in ga:
            ga["audio"].pop("output", None)
        out["session"] = ga
        return out

    def _response(self, resp: dict[str, Any]) -> dict[str, Any]:
        ga: dict[str, Any] = {}
        for key, value in resp.items():
            param = f"response.{key}"
            if key == "modalities":
                ga["output_modalities"] = _modalities(value, param)
            elif key == "temperature":
                _temperature(value, param)
            elif key == "output_audio_format":
                _put(ga, _RESPONSE_FIELDS[key], _format(value, param))
            elif key in _RESPONSE_FIELDS:
                _put(ga, _RESPONSE_FIELDS[key], copy.deepcopy(value))
            else:
                raise ProtocolError("unknown_parameter", f"Unknown parameter: '{param}'.", param)
        if "input" in ga:
            ga["input"] = [self._item_in(i) if isinstance(i, dict) else i for i in ga["input"]]
        return ga

    @staticmethod
    def _item_in(item: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(item)
        if out.get("role") == "assistant":
            for part in out.get("content", []) or []:
                if isinstance(part, dict):
                    if part.get("type") == "text":
                        part["type"] = "output_text"
                    elif part.get("type") == "input_text":
                        raise ProtocolError("invalid_value", "Invalid value: 'input_text'. Value "
                                            "must be 'text'.", "item.content[0].type")
        return out

    # ---------------------------------------------------------------- GA -> beta
    def server_event(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        etype = event["type"]
        if etype in ("conversation.item.done", "input_audio_buffer.timeout_triggered"):
            return []
        out = copy.deepcopy(event)
        out["type"] = _GA_TO_BETA_EVENTS.get(etype, etype)
        if etype in ("session.created", "session.updated"):
            if self.kind == "transcription" or event["session"].get("type") == "transcription":
                out["type"] = etype.replace("session.", "transcription_session.")
            out["session"] = self._session_out(event["session"])
        if "item" in out:
            out["item"] = self._item_out(out["item"])
        if "part" in out:
            out["part"] = self._part_out(out["part"])
        if "response" in out and isinstance(out["response"], dict):
            r = out["response"]
            mods = r.pop("output_modalities", ["audio"])
            r["modalities"] = ["text"] if mods == ["text"] else ["audio", "text"]
            audio = r.pop("audio", {}).get("output", {})
            r["voice"] = audio.get("voice", "alloy")
            r["output_audio_format"] = _FORMAT_NAMES.get(
                (audio.get("format") or {}).get("type", "audio/pcm"), "pcm16")
            r["temperature"] = 0.8
            r["output"] = [self._item_out(i) for i in r.get("output", [])]
        if etype == "error" and out["error"].get("param"):
            out["error"]["param"] = _beta_param(out["error"]["param"])
        return [out]

    @staticmethod
    def _session_out(s: dict[str, Any]) -> dict[str, Any]:
        audio = s.get("audio", {})
        ain, aout = audio.get("input", {}), audio.get("output", {})
        flat = {k: v for k, v in s.items() if k not in ("audio", "output_modalities", "type",
                                                         "max_output_tokens")}
        flat["object"] = "realtime.session"
        if "output_modalities" in s:
            flat["modalities"] = ["text"] if s["output_modalities"] == ["text"] else [
                "audio", "text"]
        if "max_output_tokens" in s:
            flat["max_response_output_tokens"] = s["max_output_tokens"]
        if aout:
            flat["voice"] = aout.get("voice")
            flat["speed"] = aout.get("speed", 1.0)
            flat["output_audio_format"] = _FORMAT_NAMES.get(aout["format"]["type"], "pcm16")
            flat["temperature"] = 0.8
        flat["input_audio_format"] = _FORMAT_NAMES.get(ain.get("format", {}).get("type"), "pcm16")
        flat["input_audio_transcription"] = ain.get("transcription")
        flat["input_audio_noise_reduction"] = ain.get("noise_reduction")
        td = ain.get("turn_detection")
        flat["turn_detection"] = td
        return flat

    def _item_out(self, item: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(item)
        for i, part in enumerate(out.get("content", []) or []):
            out["content"][i] = self._part_out(part)
        return out

    @staticmethod
    def _part_out(part: dict[str, Any]) -> dict[str, Any]:
        p = dict(part)
        if p.get("type") == "output_audio":
            p["type"] = "audio"
        elif p.get("type") == "output_text":
            p["type"] = "text"
        return p


def _beta_param(param: str) -> str:
    for flat, path in _SESSION_FIELDS.items():
        ga = "session." + ".".join(path)
        if param == ga or param.startswith(ga + "."):
            return "session." + flat + param[len(ga):]
    return param.replace("session.output_modalities", "session.modalities")
