"""Credentials that never show: the masked :class:`Secret`, URL redaction and the log filter.

Below both ``client`` and ``server`` (neither imports the other for this): the client wraps its
API key and extra headers in :class:`Secret`; both sides hand websockets a logger carrying
:data:`REDACT_HEADERS`, because websockets logs handshake headers at DEBUG level (the client's
``Authorization: Bearer <key>``, the server's view of the same request). ``Secret``,
``redact_url`` and ``REDACT_HEADERS`` are re-exported by :mod:`realtime_nb.client.backend`,
their historical home.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["REDACT_HEADERS", "Secret", "redact_url", "register_secret_headers"]

_SECRET_QUERY = ("key", "token", "secret", "sig", "auth", "password")
_SECRET_HEADERS = {"authorization", "api-key", "x-api-key", "openai-api-key", "cookie",
                   "sec-websocket-protocol"}  # browsers send the key as a subprotocol


class Secret:
    """A credential that never prints: ``repr``/``str`` give ``'***'``; ``.reveal()`` gives it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The credential itself (only for building request headers)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")


def redact_url(url: str) -> str:
    """``url`` with the values of credential-looking query parameters replaced by ``***``."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = [(k, "***" if any(s in k.lower() for s in _SECRET_QUERY) else v)
             for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(pairs, safe="*/:")))


class _RedactHeaders(logging.Filter):
    """Mask credential headers in websockets' DEBUG handshake logs ("> Authorization: ...")."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 2 and isinstance(args[0], str) and (
            args[0].lower() in _SECRET_HEADERS or args[0].lower() in _EXTRA_SECRET_HEADERS
        ):
            record.args = (args[0], "***")
        elif isinstance(args, tuple) and args and isinstance(args[0], str) and "?" in args[0]:
            record.args = (redact_url(args[0]), *args[1:])
        return True


#: Header names registered by sessions as secret (lower case), besides the usual ones.
_EXTRA_SECRET_HEADERS: set[str] = set()


def register_secret_headers(names: Mapping[str, Any] | set[str]) -> None:
    """Mask these header names too in the websockets handshake logs."""
    _EXTRA_SECRET_HEADERS.update(n.lower() for n in names)


#: The filter masking credential headers in websockets' handshake logs (client or server side).
REDACT_HEADERS = _RedactHeaders()
