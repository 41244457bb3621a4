"""realtime_nb.protocol: one wire-named protocol model shared by client, local server and timeline.

* :mod:`.schema` — the schema compiler and :class:`ProtocolError` (service-shaped errors).
* :mod:`.config` — GA session configuration dataclasses (patches) and defaults.
* :mod:`.events` — GA client events, items, response parameters; :func:`validate_client_event`.
* :mod:`.buffer` — input-buffer accounting shared by the server and the kernel-side mirror.
* :mod:`.state` — :class:`SessionCore`, the I/O-free session state machine (its parts in
  ``_turns``, ``_conversation``, ``_responses``, ``_playout``, ``_mcp_flow``, ``_jobs``).
* :mod:`.item_order` — conversation order by ``previous_item_id``, shared with the client's mirror.
* :mod:`.mcp` — MCP tool rules (``allowed_tools``, ``require_approval``, token redaction).
* :mod:`.beta` — translation of the retired beta dialect, used only at the edges.
"""

from ._playout import OUTPUT_AUDIO_CLEAR_REFUSED
from .buffer import COMMIT_MIN_MS, InputBuffer, bytes_per_ms, commit_empty_message
from .config import (
    AudioConfig,
    AudioInput,
    AudioOutput,
    FunctionTool,
    McpTool,
    NoiseReduction,
    PcmaFormat,
    PcmFormat,
    PcmuFormat,
    SemanticVad,
    ServerVad,
    SessionConfig,
    Transcription,
    TranscriptionSessionConfig,
    default_session,
    merge_session,
)
from .events import (
    CLIENT_EVENTS,
    SERVER_EVENTS,
    McpApprovalResponseItem,
    ResponseParams,
    validate_client_event,
)
from .schema import UNSET, ProtocolError, from_wire, to_wire
from .state import Job, Reply, SessionCore, new_id

__all__ = [
    "CLIENT_EVENTS",
    "COMMIT_MIN_MS",
    "OUTPUT_AUDIO_CLEAR_REFUSED",
    "SERVER_EVENTS",
    "UNSET",
    "AudioConfig",
    "AudioInput",
    "AudioOutput",
    "FunctionTool",
    "InputBuffer",
    "Job",
    "McpApprovalResponseItem",
    "McpTool",
    "NoiseReduction",
    "PcmFormat",
    "PcmaFormat",
    "PcmuFormat",
    "ProtocolError",
    "Reply",
    "ResponseParams",
    "SemanticVad",
    "ServerVad",
    "SessionConfig",
    "SessionCore",
    "Transcription",
    "TranscriptionSessionConfig",
    "bytes_per_ms",
    "commit_empty_message",
    "default_session",
    "from_wire",
    "merge_session",
    "new_id",
    "to_wire",
    "validate_client_event",
]
