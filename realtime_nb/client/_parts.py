"""What the rooms of :class:`~realtime_nb.client.session.Session` share, for the type checker.

The Session is assembled from mixins, its rooms (:mod:`._connection`, :mod:`._receiving`,
:mod:`._waiting`, :mod:`._sending`, :mod:`._input_audio`, :mod:`._conversation`,
:mod:`._renewing`, :mod:`._tool_use`), that use each other's state and methods through
``self``. :class:`SessionParts` declares that shared surface once: the state
``Session.__init__`` creates and the methods one room (or ``session.py``) defines and another
calls. Each room derives from it *for the checker only* (at run time its base is ``object``,
so the Session's MRO is its rooms; see the comment at the top of :mod:`.session`), so mypy
checks every ``self.x`` a room uses against one declaration, and each room's own definitions
against the same signatures.

The same is done for the :class:`~realtime_nb.client.mirror.Mirror` and its conversation half
(:mod:`._conversation_mirror`): :class:`MirrorParts` declares what that mixin uses of the
Mirror.

Nothing here runs: the module is imported only under ``TYPE_CHECKING`` (abstract classes, so
the method stubs need no bodies). Declare a member here when a room starts using something
created or defined by another room (or by ``session.py``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio
    from collections import deque
    from collections.abc import Callable, Iterable
    from pathlib import Path

    from websockets.asyncio.client import ClientConnection

    from ._waiting import Callback, EventMatch, _Waiter
    from .backend import Backend
    from .errors import RealtimeError
    from .eventlog import EventLog
    from .items import Items, ItemState, ResponseState
    from .mirror import Mirror
    from .renew import RenewPolicy
    from .session import ReconnectPolicy
    from .tools import Tools

__all__ = ["MirrorParts", "SessionParts"]


class SessionParts(ABC):
    """The members of Session its rooms use of one another (see the module docstring)."""

    # ------------------------------------------------------------ the session (session.py)
    events: EventLog
    mirror: Mirror
    last_error: RealtimeError | None
    warnings: list[Any]
    intent: str | None
    model: str
    settle_s: float
    _state: str
    _transport: str
    _user_patch: dict[str, Any]

    @abstractmethod
    async def update(self, config: Any = None, /, *, wait: bool = True,
                     timeout: float | None = 15.0, **fields: Any) -> dict[str, Any]: ...

    @abstractmethod
    async def create_response(self, response: Any = None, /, *, wait: bool = False,
                              timeout: float | None = 30.0, **params: Any) -> dict[str, Any]: ...

    # ------------------------------------------------------------ the socket (_connection.py)
    _backend: Backend
    policy: ReconnectPolicy | None
    call_id: str | None
    connect_timeout: float
    recorder: Any
    audio_memory_mb: float | None
    events_in_memory: int | None
    _ws: ClientConnection | None
    _gen: int
    _recv_task: asyncio.Task[None] | None
    _reconnect_task: asyncio.Task[None] | None
    _fatal: RealtimeError | None
    _reconnects: int
    _record: bool
    _record_root: Path | None

    @abstractmethod
    async def _dial(self, timeout: float) -> ClientConnection: ...

    @abstractmethod
    async def _attach(self, ws: ClientConnection, timeout: float, restore: bool,
                      renewal: dict[str, Any] | None = None,
                      carry: list[dict[str, Any]] | None = None) -> None: ...

    @abstractmethod
    def _kind(self) -> str: ...

    @abstractmethod
    def _connection_lost(self, gen: int, exc: BaseException, force: bool = False) -> None: ...

    # ------------------------------------------------------------ receiving (_receiving.py)
    _last_server_t: float

    @abstractmethod
    async def _recv_loop(self, ws: ClientConnection, gen: int) -> None: ...

    @abstractmethod
    def _protocol_warning(self, message: str) -> None: ...

    @abstractmethod
    def _on_frame(self, data: bytes) -> None: ...

    @abstractmethod
    def _deliver(self, etype: str, view: dict[str, Any], full: dict[str, Any]) -> None: ...

    @abstractmethod
    def _record_error(self, err: RealtimeError, dispatch: bool) -> None: ...

    # ------------------------------------------------------------ waiting (_waiting.py)
    callback_errors: list[BaseException]
    _waiters: list[_Waiter]
    _callbacks: dict[str, list[Callback]]
    _tasks: set[asyncio.Task[Any]]

    @abstractmethod
    def on(self, event_type: str, callback: Callback | None = None) -> Any: ...

    @abstractmethod
    def _dispatch(self, etype: str, event: dict[str, Any]) -> None: ...

    @abstractmethod
    def _fail_waiters(self, err: RealtimeError) -> None: ...

    @abstractmethod
    async def wait_for(self, match: EventMatch, timeout: float | None = 30.0, *,
                       error_for: str | Iterable[str] | None = None,
                       since: int | None = None) -> dict[str, Any]: ...

    @abstractmethod
    async def _await(self, fut: asyncio.Future[Any], timeout: float | None,
                     what: Any) -> Any: ...

    # ------------------------------------------------------------ sending (_sending.py)
    send_queue_bytes: int
    _queue: deque[tuple[dict[str, Any], str, bytes | None]]
    _queue_bytes: int
    _flushing: bool
    _tag: str
    _n: int
    _pending_updates: deque[tuple[str | None, dict[str, Any]]]
    _last_append_t: float

    @abstractmethod
    def _next_id(self) -> str: ...

    @abstractmethod
    def _refuse(self, ev: dict[str, Any], err: RealtimeError) -> None: ...

    @abstractmethod
    async def _flush_queue(self) -> None: ...

    @abstractmethod
    def _record_client(self, ev: dict[str, Any], text: str, note: str | None = None,
                       raw: bytes | None = None) -> None: ...

    @abstractmethod
    async def _send_event(self, ev: dict[str, Any], wait: bool, timeout: float | None,
                          reply: Callable[[dict[str, Any]], bool] | None = None,
                          error_for: Iterable[str] = ()) -> dict[str, Any]: ...

    @abstractmethod
    async def _append_raw(self, raw: bytes, eid: str | None = None) -> dict[str, Any]: ...

    @abstractmethod
    def _queued_input_ms(self) -> float: ...

    # ------------------------------------------------------------ input audio (_input_audio.py)
    @abstractmethod
    def _check_append(self, ev: dict[str, Any], raw: bytes) -> None: ...

    @abstractmethod
    async def _check_commit(self, ev: dict[str, Any], settle: float | None) -> None: ...

    @abstractmethod
    def _commit_hint(self) -> str: ...

    @abstractmethod
    def _input_format(self) -> dict[str, Any]: ...

    @abstractmethod
    def _convert_audio(self, audio: Any, sample_rate: int | None) -> bytes: ...

    # ------------------------------------------------------------ conversation (_conversation.py)
    @abstractmethod
    async def create_item(self, item: Any = None, *, text: str | None = None,
                          role: str = "user", audio: Any = None, sample_rate: int | None = None,
                          image: Any = None, detail: str = "auto", max_side: int = 2048,
                          previous_item_id: Any = ..., wait: bool = False,
                          timeout: float | None = 15.0) -> dict[str, Any]: ...

    # ------------------------------------------------------------ renewal (_renewing.py)
    renew_policy: RenewPolicy | None
    _renew_timer: asyncio.TimerHandle | None
    _renew_task: asyncio.Task[None] | None
    _renew_now: asyncio.Event | None
    _old_dead: bool
    _renew_again: str | None
    _renew_switched: bool

    @abstractmethod
    def _schedule_renewal(self) -> None: ...

    @abstractmethod
    def _start_renewal(self, reason: str) -> asyncio.Task[None]: ...

    @abstractmethod
    def _cancel_renewal(self) -> None: ...

    # ------------------------------------------------------------ tools (_tool_use.py)
    _tools: Tools | None


class MirrorParts(ABC):
    """The members of the Mirror that its conversation half (:mod:`._conversation_mirror`)
    uses: the state ``Mirror.__init__`` creates and the Mirror's own lookups."""

    items: Items
    all_items: dict[str, ItemState]
    responses: dict[str, ResponseState]
    active_response_id: str | None
    usage: dict[str, Any]
    transcription_usage: dict[str, Any]
    rate_limits: dict[str, dict[str, Any]]
    _created_audio: dict[str, tuple[bytes, dict[str, Any]]]
    _created_images: dict[str, list[str]]
    _carrying: set[str]

    @property
    @abstractmethod
    def session_id(self) -> str | None: ...

    @property
    @abstractmethod
    def output_format(self) -> dict[str, Any]: ...

    @abstractmethod
    def item(self, item_id: str) -> ItemState: ...
