"""What the parts of :class:`~realtime_nb.protocol.state.SessionCore` share, for the type checker.

SessionCore is assembled from mixins (:mod:`._turns`, :mod:`._conversation`,
:mod:`._responses`, :mod:`._playout`, :mod:`._mcp_flow`) that use each other's state and methods
through ``self``. :class:`SessionParts` declares that shared surface once: the state the core's
``__init__`` creates, the core's config views and output helpers, and the methods one part calls
on another. Each mixin derives from it *for the checker only* (at run time its base is
``object``; see the comment at the top of :mod:`.state`), so mypy checks every ``self.x`` a
part uses against one declaration, and each part's own definitions against the same
signatures.

Nothing here runs: the module is imported only under ``TYPE_CHECKING`` (an ABC, so the method
stubs need no bodies). Declare a member here when a part starts using something created or
defined by another part (or by the core).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np

    from realtime_nb.vad.speech import SpeechModel

    from ._responses import _Response
    from .buffer import InputBuffer
    from .item_order import ItemOrder
    from .jobs import Job, RespondJob, TranscribePayload
    from .schema import ProtocolError

__all__ = ["SessionParts"]


class SessionParts(ABC):
    """The members of SessionCore its parts use of one another (see the module docstring)."""

    # ------------------------------------------------------------ the session (state.py)
    kind: str
    transport: str
    id: str
    conversation_id: str
    config: dict[str, Any]
    clock: Callable[[], float]
    created_at: float
    max_duration_s: float
    expires_at: int
    outbox: list[dict[str, Any]]
    jobs: list[Job]
    closed: bool
    close_code: int | None
    _idle_deadline: float | None

    @property
    @abstractmethod
    def _in_format(self) -> dict[str, Any]: ...

    @property
    @abstractmethod
    def _out_format(self) -> dict[str, Any]: ...

    @property
    @abstractmethod
    def _turn_detection(self) -> dict[str, Any] | None: ...

    @abstractmethod
    def emit(self, etype: str, **fields: Any) -> dict[str, Any]: ...

    @abstractmethod
    def error(self, err: ProtocolError, event_id: str | None = None) -> None: ...

    # ------------------------------------------------------------ input turns (_turns.py)
    buffer: InputBuffer
    noise_filter: Any
    _make_noise_filter: Callable[[dict[str, Any] | None, dict[str, Any]], Any] | None
    _vad_model: SpeechModel | None
    _make_segmenter: Callable[[dict[str, Any], float], Any] | None
    #: the end-of-turn model (``predict(int16 24 kHz samples) -> probability``) or None
    _turn_model: Any
    # Set together by _reset_vad: the stream and the segmenter (both or neither), the resampler
    # (with them, for an input rate other than 24 kHz). Their uses rely on that, so they stay
    # Any: as Optional types each use would need a run-time check (an assert) to narrow them.
    _vad_stream: Any
    _segmenter: Any
    _vad_to_24k: Any
    _vad_origin_ms: float  # set by _reset_vad whenever a segmenter is made
    _vad_pending: list[np.ndarray]
    _held: list[float]
    _ring: list[np.ndarray]
    _ring_start: int
    _spec_silence: float | None
    _spec_id: int
    _spec_open: int | None
    _pending_item_id: str | None
    _speech_start_ms: float
    _turn_audio: bytearray
    _turn_start_bytes: int

    @abstractmethod
    def _transcribe_payload(self, item_id: str, audio: bytes,
                            has_speech: bool | None = None) -> TranscribePayload: ...

    # ------------------------------------------------------------ conversation (_conversation.py)
    conversation: ItemOrder[dict[str, Any]]
    item_audio: dict[str, bytes]
    item_image_tokens: dict[str, int]

    @property
    @abstractmethod
    def items(self) -> list[dict[str, Any]]: ...

    @property
    @abstractmethod
    def _index(self) -> dict[str, dict[str, Any]]: ...

    @abstractmethod
    def _get_item(self, item_id: str, param: str) -> dict[str, Any]: ...

    @abstractmethod
    def _insert(self, item: dict[str, Any], previous_item_id: str | None) -> None: ...

    @abstractmethod
    def _previous_id(self, item: dict[str, Any]) -> str | None: ...

    @abstractmethod
    def _item_added_done(self, item: dict[str, Any], prev: str | None = None, *,
                         ordered: bool = True) -> None: ...

    # ------------------------------------------------------------ responses (_responses.py)
    responses: dict[str, _Response]
    active_response: str | None
    assistant_audio_present: bool

    @abstractmethod
    def create_response(self, params: dict[str, Any]) -> str | None: ...

    @abstractmethod
    def cancel_response(self, response_id: str, reason: str) -> None: ...

    @abstractmethod
    def _open_item(self, resp: _Response, item: dict[str, Any]) -> None: ...

    @abstractmethod
    def _close_open_item(self, resp: _Response, status: str) -> None: ...

    @abstractmethod
    def _complete(self, resp: _Response) -> None: ...

    # ------------------------------------------------------------ output buffer (_playout.py)
    playout: list[tuple[str, str, bytes]]
    _audible: list[str]

    @abstractmethod
    def _queue_playout(self, response_id: str, pcm16_24k: bytes) -> None: ...

    @abstractmethod
    def _clear_playout(self) -> None: ...

    # ------------------------------------------------------------ MCP (_mcp_flow.py)
    mcp_servers: dict[str, dict[str, Any]]
    _approvals: dict[str, dict[str, Any]]
    _running_calls: dict[str, dict[str, Any]]
    _deferred: dict[str, tuple[RespondJob, bool]]

    @abstractmethod
    def _sync_mcp(self, tools: Any) -> None: ...

    @abstractmethod
    def _release_responses(self) -> None: ...

    @abstractmethod
    def _advance_mcp(self, resp: _Response) -> bool: ...

    @abstractmethod
    def _check_approval(self, item: dict[str, Any]) -> dict[str, Any] | None: ...

    @abstractmethod
    def _answer_approval(self, pending: dict[str, Any], answer: dict[str, Any]) -> None: ...
