"""realtime_nb.client: the kernel-side :class:`Session` and what it is made of.

* :mod:`.session` — :class:`Session` (connect, wire-named methods, helpers, reconnect); its
  rooms are the private ``_connection``, ``_receiving``, ``_waiting``, ``_sending``,
  ``_input_audio``, ``_conversation``, ``_renewing`` and ``_tool_use`` (session.py's docstring
  lists what each holds).
* :mod:`.mirror` — the state mirror (input buffer, VAD state, items, responses, usage).
* :mod:`.items` — the mirror's records: :class:`ItemState`, :class:`ResponseState`, :class:`Items`.
* :mod:`.eventlog` — the event log with its audio store, JSONL export/import and replay.
* :mod:`.errors` — :class:`RealtimeError` and the warnings; which codes are fatal.
* :mod:`.hints` — explanations of the classic mistakes (shared with the VAD lab).
* :mod:`.backend` — where to connect and with which (never shown) credentials.
* :mod:`.tools` — Python functions as function tools, run for the model (:func:`function_tool`).
* :mod:`.testing` — a scriptable fake Realtime server for tests and fault injection.
"""

from .errors import (
    BENIGN_CODES,
    FATAL_CODES,
    AudioWarning,
    ProtocolWarning,
    RealtimeError,
    RealtimeTimeout,
    RealtimeWarning,
)
from .eventlog import AudioStore, EventLog, LoggedEvent
from .hints import explain_commit_empty, hint_for
from .mirror import Items, ItemState, Mirror, ResponseState
from .renew import RenewPolicy
from .session import AudioSent, ReconnectPolicy, Session
from .tools import ToolCall, Tools, function_tool

__all__ = [
    "BENIGN_CODES",
    "FATAL_CODES",
    "AudioSent",
    "AudioStore",
    "AudioWarning",
    "EventLog",
    "ItemState",
    "Items",
    "LoggedEvent",
    "Mirror",
    "ProtocolWarning",
    "RealtimeError",
    "RealtimeTimeout",
    "RealtimeWarning",
    "ReconnectPolicy",
    "RenewPolicy",
    "ResponseState",
    "Session",
    "ToolCall",
    "Tools",
    "explain_commit_empty",
    "function_tool",
    "hint_for",
]
