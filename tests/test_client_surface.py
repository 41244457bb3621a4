"""The Session's public surface: what a caller imports from ``realtime_nb.client.session`` and
``realtime_nb.client.testing``, the Session's public methods and properties with their call
signatures, and the attributes an instance carries.

Pinned so that cutting ``session.py`` into its rooms (connection, receiving, waiting, sending,
input audio, renewal) cannot change what a caller imports, how it calls a method, or which object
a name is: the rooms are private modules, the Session is still one class at its old path.
"""

from __future__ import annotations

import inspect

import realtime_nb
import realtime_nb.client as client
import realtime_nb.client.session as session_module
import realtime_nb.client.testing as testing
from realtime_nb.client.session import Session
from realtime_nb.protocol.beta import BetaTranslator

PROPERTIES = [
    "active_response", "backend", "config", "input_buffer_ms", "items", "pending",
    "pending_approvals", "rate_limits", "recording_folder", "responses", "seams", "speaking",
    "state", "transcripts", "transport", "url", "usage", "user_config",
]

METHODS = {
    "append": "(self, data: 'bytes | bytearray | memoryview | str', *, force: 'bool' = False) "
              "-> 'dict[str, Any]'",
    "approve_mcp": "(self, request: 'Any', approve: 'bool' = True, *, "
                   "reason: 'str | None' = None, respond: 'bool' = True, "
                   "timeout: 'float | None' = 60.0) -> 'dict[str, Any]'",
    "cancel_response": "(self, response_id: 'str | None' = None, *, wait: 'bool' = False, "
                       "timeout: 'float | None' = 15.0) -> 'dict[str, Any]'",
    "clear": "(self, *, wait: 'bool' = False, timeout: 'float | None' = 15.0) "
             "-> 'dict[str, Any]'",
    "clear_output_audio": "(self, *, wait: 'bool' = False, timeout: 'float | None' = 15.0) "
                          "-> 'dict[str, Any]'",
    "close": "(self) -> 'None'",
    "commit": "(self, *, force: 'bool' = False, wait: 'bool' = False, "
              "timeout: 'float | None' = 15.0, settle: 'float | None' = None) "
              "-> 'dict[str, Any]'",
    "connect": "(self, timeout: 'float | None' = None, *, call_id: 'str | None' = None) "
               "-> 'Session'",
    "create_client_secret": "(self, session: 'Mapping[str, Any] | None' = None, *, "
                            "expires_after_s: 'int' = 600) -> 'Any'",
    "create_item": "(self, item: 'Any' = None, *, text: 'str | None' = None, "
                   "role: 'str' = 'user', audio: 'Any' = None, "
                   "sample_rate: 'int | None' = None, image: 'Any' = None, "
                   "detail: 'str' = 'auto', max_side: 'int' = 2048, "
                   "previous_item_id: 'Any' = UNSET, wait: 'bool' = False, "
                   "timeout: 'float | None' = 15.0) -> 'dict[str, Any]'",
    "create_response": "(self, response: 'Any' = None, /, *, wait: 'bool' = False, "
                       "timeout: 'float | None' = 30.0, **params: 'Any') -> 'dict[str, Any]'",
    "delete_item": "(self, item_id: 'str', *, wait: 'bool' = False, "
                   "timeout: 'float | None' = 15.0) -> 'dict[str, Any]'",
    "item_audio": "(self, item_id: 'str', *, untruncated: 'bool' = False) -> 'Any'",
    "off": "(self, event_type: 'str', callback: 'Callback | None' = None) -> 'None'",
    "on": "(self, event_type: 'str', callback: 'Callback | None' = None) -> 'Any'",
    "reconnect": "(self, timeout: 'float | None' = None) -> 'Session'",
    "renew": "(self) -> 'dict[str, Any]'",
    "retrieve_item": "(self, item_id: 'str', *, timeout: 'float | None' = 15.0) "
                     "-> 'dict[str, Any]'",
    "say": "(self, text: 'str', *, wait: 'bool' = True, timeout: 'float | None' = 120.0, "
           "**response: 'Any') -> 'ResponseState'",
    "send": "(self, event: 'Mapping[str, Any] | Any', *, validate: 'bool' = True) "
            "-> 'dict[str, Any]'",
    "send_audio": "(self, audio: 'Any', sample_rate: 'int | None' = None, *, "
                  "chunk_ms: 'float' = 100, realtime: 'bool' = False, force: 'bool' = False) "
                  "-> 'AudioSent'",
    "send_image": "(self, image: 'Any', *, text: 'str | None' = None, detail: 'str' = 'auto', "
                  "respond: 'bool' = False, max_side: 'int' = 2048, wait: 'bool' = False, "
                  "timeout: 'float | None' = 15.0, **response: 'Any') -> 'dict[str, Any]'",
    "truncate": "(self, item_id: 'str', audio_end_ms: 'int', content_index: 'int' = 0, *, "
                "wait: 'bool' = False, timeout: 'float | None' = 15.0) -> 'dict[str, Any]'",
    "update": "(self, config: 'Any' = None, /, *, wait: 'bool' = True, "
              "timeout: 'float | None' = 15.0, **fields: 'Any') -> 'dict[str, Any]'",
    "use_tools": "(self, *functions: 'Callable[..., Any]', respond: 'bool' = True, "
                 "thread: 'bool' = True, tool_choice: 'str' = 'auto') -> 'Tools'",
    "wait_for": "(self, match: 'EventMatch', timeout: 'float | None' = 30.0, *, "
                "error_for: 'str | Iterable[str] | None' = None, since: 'int | None' = None) "
                "-> 'dict[str, Any]'",
}

CONSTRUCTOR = (
    "(self, backend: 'str | None' = None, url: 'str | None' = None, "
    "api_key: 'str | None' = None, model: 'str' = 'gpt-realtime', *, "
    "headers: 'Mapping[str, str] | None' = None, intent: 'str | None' = None, "
    "reconnect: 'ReconnectPolicy | None' = None, auto_reconnect: 'bool' = False, "
    "send_queue_bytes: 'int' = 8388608, connect_timeout: 'float' = 20.0, "
    "settle_s: 'float' = 0.4, transport: 'str' = 'websocket', "
    "record: 'bool | str | os.PathLike[str] | None' = None, "
    "audio_memory_mb: 'float | None' = 64.0, events_in_memory: 'int | None' = 20000, "
    "renew: 'bool | RenewPolicy' = False) -> 'None'"
)

#: Public attributes every new Session carries (set by the constructor).
INSTANCE_ATTRIBUTES = [
    "audio_memory_mb", "call_id", "callback_errors", "connect_timeout", "events",
    "events_in_memory", "intent", "last_error", "mirror", "model", "policy", "recorder",
    "renew_policy", "send_queue_bytes", "settle_s", "warnings",
]


def test_the_session_module_exports_the_same_names_as_the_same_objects() -> None:
    assert sorted(session_module.__all__) == ["AudioSent", "ReconnectPolicy", "RenewPolicy",
                                              "Session"]
    for name in session_module.__all__:
        assert getattr(session_module, name) is getattr(client, name)
    assert realtime_nb.Session is Session


def test_the_testing_module_exports_its_fake_server_names() -> None:
    assert sorted(testing.__all__) == ["FakeConnection", "FakeRealtimeServer", "tone_pcm16"]
    assert all(hasattr(testing, name) for name in testing.__all__)


FAKE_SERVER_SIGNATURE = (
    "(*, host: 'str' = '127.0.0.1', port: 'int' = 0, "
    "reply_text: 'str' = 'Hello from the fake server.', reply_audio_ms: 'float' = 300.0, "
    "audio_interval: 'float' = 0.0, transcript: 'str' = 'hello', created_delay: 'float' = 0.0, "
    "reply_delay: 'float' = 0.0, send_created: 'bool' = True, vad: 'bool' = True, "
    "max_duration_s: 'float' = 3600.0, trace: 'list[str | bytes] | None' = None, "
    "on_client_event: 'Callable[[FakeConnection, dict[str, Any]], Any] | None' = None, "
    "require_key: 'str | None' = None) -> 'None'")


def test_the_fake_server_keeps_its_constructor_and_what_tests_read() -> None:
    """The fake moved onto the local server (server/scripted.py); its callers' view is pinned."""
    assert str(inspect.signature(testing.FakeRealtimeServer)) == FAKE_SERVER_SIGNATURE
    fake = testing.FakeRealtimeServer(port=1234)
    assert fake.url == "ws://127.0.0.1:1234/v1/realtime?model=gpt-realtime"
    assert (fake.received, fake.connections, fake.handshakes, fake.live) == ([], [], [], [])
    for method in ("start", "stop", "push", "drop", "close_all", "__aenter__", "__aexit__"):
        assert callable(getattr(fake, method)), method


def test_the_session_has_exactly_its_public_methods_and_properties() -> None:
    public = sorted(n for n in dir(Session) if not n.startswith("_"))
    assert public == sorted([*PROPERTIES, *METHODS])
    for name in PROPERTIES:
        assert isinstance(inspect.getattr_static(Session, name), property), name


def test_the_session_methods_keep_their_call_signatures() -> None:
    for name, signature in METHODS.items():
        assert str(inspect.signature(getattr(Session, name))) == signature, name
    assert str(inspect.signature(Session.__init__)) == CONSTRUCTOR


def test_the_wire_methods_stay_coroutines_and_on_off_stay_plain() -> None:
    """``on``/``off``/``item_audio`` are called from callbacks and the panel without awaiting."""
    plain = {"item_audio", "off", "on"}
    for name in METHODS:
        assert inspect.iscoroutinefunction(getattr(Session, name)) is (name not in plain), name


def test_a_new_session_carries_its_public_attributes() -> None:
    s = Session(backend="local", record=False)
    assert all(hasattr(s, name) for name in INSTANCE_ATTRIBUTES)
    assert s.state == "new" and s.pending == [] and s.user_config == {}


def test_displaying_a_session_is_wired_by_the_package_not_by_the_client() -> None:
    """``realtime_nb/__init__.py`` patches the display hook so that client never imports
    widgets (tests/test_layering.py); the Session's docstring says so."""
    assert Session._repr_mimebundle_.__module__ == "realtime_nb"  # type: ignore[attr-defined]
    assert "_repr_mimebundle_" in (Session.__doc__ or "")


def test_update_shortcuts_and_beta_flat_fields_land_on_the_same_ga_paths() -> None:
    """``update(input_format=..., voice=..., transcription=...)`` and the beta dialect's flat
    fields are placed by one table (``protocol.config.AUDIO_SETTING_PATHS``)."""
    s = Session(backend="local", record=False)
    ours = s._update_event(None, {"input_format": {"type": "audio/pcmu"}, "voice": "ash",
                                  "transcription": {"model": "whisper-1"},
                                  "noise_reduction": {"type": "near_field"}})
    beta = BetaTranslator().client_event({"type": "session.update", "session": {
        "input_audio_format": "g711_ulaw", "voice": "ash",
        "input_audio_transcription": {"model": "whisper-1"},
        "input_audio_noise_reduction": {"type": "near_field"}}})
    assert ours["session"]["audio"] == beta["session"]["audio"]
    assert ours["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
