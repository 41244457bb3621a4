"""Function arguments from what the user said: :func:`arguments_for_schema` fills a tool's JSON
schema (``parameters``, or an MCP tool's ``input_schema``) from an utterance, deterministically,
for :class:`~realtime_nb.server.engines.responder.EchoResponder`. No model: words after the
property's name, numbers in order (digits or number words), first ``enum`` value, and so on.

Import :func:`arguments_for_schema` from :mod:`realtime_nb.server.engines.responder`.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["arguments_for_schema"]

_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100,
}
_LEADING_FILLER = {
    "in", "for", "at", "of", "on", "to", "the", "a", "an", "about", "is", "are", "be", "please",
    "me", "my", "with", "from", "like", "by",
}


def _numbers_in(text: str) -> list[float]:
    found: list[float] = []
    for token in re.findall(r"-?\d+(?:\.\d+)?|[a-zA-Z]+", text):
        if re.fullmatch(r"-?\d+(?:\.\d+)?", token):
            found.append(float(token))
        elif token.lower() in _NUMBER_WORDS:
            found.append(float(_NUMBER_WORDS[token.lower()]))
    return found


def _strip_filler(words: list[str]) -> list[str]:
    while words and words[0].lower().strip(",.;:!?\"'") in _LEADING_FILLER:
        words = words[1:]
    return words


def _clean_phrase(words: list[str]) -> str:
    return " ".join(_strip_filler(words)).strip(" ,.;:!?\"'")


def _is_null(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "null"


def _schema_type(schema: dict[str, Any]) -> str | None:
    stype = schema.get("type")
    if isinstance(stype, list):
        non_null = [t for t in stype if t != "null"]
        return non_null[0] if non_null else "null"
    return stype if isinstance(stype, str) else None


class _ArgumentBuilder:
    """Fills a JSON schema from an utterance (see :func:`arguments_for_schema`)."""

    def __init__(self, utterance: str, after_match: str) -> None:
        self.utterance = utterance
        self.words = utterance.split()
        self.after_match = after_match
        self.numbers = _numbers_in(utterance)

    def string_for(self, prop_name: str) -> str:
        # Words after a mention of the property's own name ("city Paris" → "Paris"), else the
        # words after the tool-name match, else the whole utterance.
        name_parts = {p for p in re.split(r"[_\-\s]+", prop_name.lower()) if p}
        for i, word in enumerate(self.words):
            if word.lower().strip(",.;:!?\"'") in name_parts:
                phrase = _clean_phrase(self.words[i + 1 :])
                if phrase:
                    return phrase
        return self.after_match or self.utterance.strip(" .!?") or prop_name

    def number_for(self, schema: dict[str, Any], integer: bool) -> float | int:
        value = self.numbers.pop(0) if self.numbers else float(schema.get("minimum", 0))
        if "minimum" in schema:
            value = max(value, float(schema["minimum"]))
        if "maximum" in schema:
            value = min(value, float(schema["maximum"]))
        if "exclusiveMinimum" in schema and value <= float(schema["exclusiveMinimum"]):
            value = float(schema["exclusiveMinimum"]) + 1
        if "exclusiveMaximum" in schema and value >= float(schema["exclusiveMaximum"]):
            value = float(schema["exclusiveMaximum"]) - 1
        return int(value) if integer or value == int(value) else value

    def build(self, schema: Any, prop_name: str = "value") -> Any:
        if not isinstance(schema, dict):
            return None
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][0]
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                non_null = [o for o in options if not (isinstance(o, dict) and _is_null(o))]
                return self.build((non_null or options)[0], prop_name)
        stype = _schema_type(schema)
        if stype is None and "properties" in schema:
            stype = "object"
        if stype == "object":
            props = schema.get("properties") or {}
            return {name: self.build(sub, name) for name, sub in props.items()}
        if stype == "array":
            count = int(schema.get("minItems", 0))
            items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
            return [self.build(items, prop_name) for _ in range(count)]
        if stype == "string":
            return self.string_for(prop_name)
        if stype in ("integer", "number"):
            return self.number_for(schema, integer=stype == "integer")
        if stype == "boolean":
            return False
        if stype == "null":
            return None
        return self.string_for(prop_name)


def arguments_for_schema(
    parameters: dict[str, Any] | None, utterance: str, *, after_match: str = ""
) -> dict[str, Any]:
    """Build function arguments for a JSON-schema ``parameters`` object from what the user said.

    Every declared property is filled (so all ``required`` ones are present): strings from the
    utterance (the words after a mention of the property's name, else ``after_match``, else the
    whole utterance), numbers found in it in order (digits or number words, clamped to
    ``minimum``/``maximum``; 0 or the minimum if none), the first ``enum`` value, ``const``,
    ``false`` for booleans, ``minItems`` items for arrays, nested objects recursively.
    ``pattern``/``format``/length constraints are not enforced.
    """
    built = _ArgumentBuilder(utterance, after_match).build(parameters or {"type": "object"})
    return built if isinstance(built, dict) else {}
