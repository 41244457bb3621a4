"""Which server a Session talks to, and with which credentials (never shown anywhere).

:func:`resolve_backend` turns ``Session(backend=..., url=..., api_key=..., model=...)`` into a
:class:`Backend`:

* ``backend="local"`` — the embedded offline server
  (:func:`realtime_nb.server.ensure_local_server`), started on first use in its own thread; any
  bearer token is accepted.
* ``backend="openai"`` — ``wss://api.openai.com/v1/realtime?model=...`` with ``api_key`` or the
  ``OPENAI_API_KEY`` environment variable.
* ``url="wss://..."`` — any compatible server (Azure, self-hosted). ``api_key`` is sent as a
  bearer token when given; the ``OPENAI_API_KEY`` variable is only ever sent to ``*.openai.com``.
  Extra ``headers`` (e.g. Azure's ``api-key``) are treated as secrets too.
* nothing — OpenAI when ``OPENAI_API_KEY`` is set, else local.

The key lives in a :class:`Secret`, whose ``repr``/``str`` are masked; reprs show the URL with
credential-looking query parameters masked. The websockets library logs handshake headers at DEBUG
level; :data:`WS_LOGGER` (passed to it) masks them. ``Secret``, ``redact_url`` and the header
filter live in :mod:`realtime_nb.credentials` (shared with the server) and are re-exported here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from realtime_nb.credentials import REDACT_HEADERS, Secret, redact_url, register_secret_headers
from realtime_nb.net import is_loopback

from .errors import RealtimeError
from .hints import hint_for

__all__ = [
    "OPENAI_URL",
    "REDACT_HEADERS",
    "WS_LOGGER",
    "Backend",
    "Secret",
    "redact_url",
    "register_secret_headers",
    "resolve_backend",
]

OPENAI_URL = "wss://api.openai.com/v1/realtime"


@dataclass
class Backend:
    """Where to connect: ``name`` (``"local"``, ``"openai"`` or ``"url"``), ``url`` and auth.

    ``url`` is empty for a local backend until the server is started (:meth:`start_local`).
    """

    name: str
    url: str
    model: str
    api_key: Secret | None = field(default=None, repr=False)
    extra_headers: dict[str, Secret] = field(default_factory=dict, repr=False)
    # (url, display_url) of the last call: a panel shows the URL at every redraw.
    _display: tuple[str, str] = field(default=("", ""), init=False, repr=False, compare=False)

    @property
    def display_url(self) -> str:
        """The URL for people (reprs, logs): credential-looking query values masked."""
        if not self.url:
            return "(local server, started on connect)" if self.name == "local" else ""
        url, shown = self._display
        if url is not self.url:
            shown = redact_url(self.url)
            self._display = (self.url, shown)
        return shown

    def headers(self) -> dict[str, str]:
        """The handshake headers (with the credentials) — for the socket only, never for logs."""
        out = {k: v.reveal() for k, v in self.extra_headers.items()}
        if self.api_key is not None:
            out["Authorization"] = f"Bearer {self.api_key.reveal()}"
        return out

    def start_local(self) -> None:
        """Start (or reuse) the process-wide local server and point ``url`` at it.

        Blocks until the server listens (it loads its models in the background): call it through
        ``asyncio.to_thread`` from async code.
        """
        from realtime_nb.server import ensure_local_server

        server = ensure_local_server()
        self.url = _with_query(server.url, model=self.model)

    def __repr__(self) -> str:
        return f"Backend(name={self.name!r}, url={self.display_url!r}, model={self.model!r})"


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    have = {k for k, _ in pairs}
    pairs += [(k, v) for k, v in params.items() if k not in have]
    return urlunsplit(parts._replace(query=urlencode(pairs)))


def resolve_backend(
    backend: str | None = None,
    url: str | None = None,
    api_key: str | None = None,
    model: str = "gpt-realtime",
    *,
    headers: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Backend:
    """Decide where a Session connects (see the module docstring); raises RealtimeError.

    Nothing is contacted here: a local server is started only at ``connect()``.
    """
    env = os.environ if env is None else env
    extra = {k: Secret(v) for k, v in (headers or {}).items()}
    env_key = env.get("OPENAI_API_KEY") or None
    if backend is not None and backend not in ("local", "openai"):
        raise ValueError(f"backend must be 'local', 'openai' or None, got {backend!r} "
                         "(use url=... for any other server)")
    if url is not None:
        if backend == "local":
            raise ValueError("pass either backend='local' or url=..., not both")
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss"):
            raise ValueError(f"url must start with ws:// or wss://, got {redact_url(url)!r}")
        host = parts.hostname or ""
        key = api_key
        if key is None and (host == "api.openai.com" or host.endswith(".openai.com")):
            key = env_key
        if key is None and is_loopback(host) and not extra:
            key = "local"
        name = "openai" if host == "api.openai.com" else "url"
        return Backend(name, url, model, Secret(key) if key else None, extra)
    if backend is None:
        backend = "openai" if (api_key or env_key) else "local"
    if backend == "openai":
        key = api_key or env_key
        if not key:
            raise RealtimeError(
                "missing_api_key", "No API key: OPENAI_API_KEY is not set and api_key= was not "
                "given.", source="client", fatal=True, hint=hint_for("missing_api_key"))
        return Backend("openai", _with_query(OPENAI_URL, model=model), model, Secret(key), extra)
    return Backend("local", "", model, Secret(api_key or "local"), extra)


#: The logger handed to ``websockets.connect``: same output as websockets' own, headers masked.
WS_LOGGER = logging.getLogger("realtime_nb.client.websockets")
WS_LOGGER.addFilter(REDACT_HEADERS)
