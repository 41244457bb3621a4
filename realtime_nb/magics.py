"""``%load_ext realtime_nb`` and the ``%realtime`` line magic.

::

    %load_ext realtime_nb
    %realtime                                   # local offline server (or OpenAI with a key)
    %realtime --backend openai --voice marin --vad semantic --name s
    %realtime --transport webrtc                # the browser places a WebRTC call

``%realtime`` creates a :class:`~realtime_nb.Session`, stores it in the notebook's namespace
(``_realtime_session``, or the name given with ``--name``; a session already stored there is
closed), returns its panel — which is displayed as the cell's result — and connects in the
background: a magic cannot ``await``, so the connection is a task on the kernel's loop and the
panel says "connecting…" until it is up. The options (voice, turn detection, transcription,
instructions) are applied with one ``session.update`` right after connecting; the panel shows
the server's echo or its error.

Input transcription is on by default (``--transcription whisper-1``) so that your turns appear
in the transcript; ``--transcription none`` turns it off (on OpenAI it is billed separately).
"""

from __future__ import annotations

import asyncio
import shlex
from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

__all__ = ["RealtimeMagics", "load_ipython_extension", "realtime_settings"]

DEFAULT_NAME = "_realtime_session"
_TASKS: set[asyncio.Task[Any]] = set()
_VAD = {"none": None, "server": {"type": "server_vad"}, "semantic": {"type": "semantic_vad"}}


def realtime_settings(*, voice: str | None = None, vad: str | None = None,
                      transcription: str | None = "whisper-1", language: str | None = None,
                      instructions: str | None = None) -> dict[str, Any]:
    """The ``session`` patch the magic's options stand for (only what was asked for)."""
    patch: dict[str, Any] = {}
    audio_in: dict[str, Any] = {}
    if vad is not None:
        if vad not in _VAD:
            raise ValueError(f"--vad must be none, server or semantic, not {vad!r}")
        audio_in["turn_detection"] = _VAD[vad]
    if transcription is not None:
        if transcription.lower() in ("none", "off", ""):
            audio_in["transcription"] = None
        else:
            tr: dict[str, Any] = {"model": transcription}
            if language:
                tr["language"] = language
            audio_in["transcription"] = tr
    if audio_in:
        patch["audio"] = {"input": audio_in}
    if voice is not None:
        patch.setdefault("audio", {})["output"] = {"voice": voice}
    if instructions is not None:
        patch["instructions"] = instructions
    return patch


@magics_class
class RealtimeMagics(Magics):
    """The ``%realtime`` magic (see the module docstring)."""

    # IPython's magic_arguments and argument have no annotations: each decorator below is an
    # untyped call and an untyped decorator (to the checker, realtime is Any).
    @magic_arguments()  # type: ignore[no-untyped-call, untyped-decorator]
    @argument(  # type: ignore[no-untyped-call, untyped-decorator]
        "--backend", choices=["local", "openai"], default=None,
        help="local: the offline server; openai: api.openai.com (needs OPENAI_API_KEY). "
        "Default: openai when a key is set, else local.")
    @argument(  # type: ignore[no-untyped-call, untyped-decorator]
        "--url", default=None, help="Any Realtime-compatible ws:// or wss:// URL.")
    @argument(  # type: ignore[no-untyped-call, untyped-decorator]
        "--model", default="gpt-realtime", help="The model (fixed at connect).")
    @argument(  # type: ignore[no-untyped-call, untyped-decorator]
        "--voice", default=None, help="Assistant voice (alloy, marin, cedar, ...).")
    @argument(  # type: ignore[no-untyped-call, untyped-decorator]
        "--vad", choices=["none", "server", "semantic"], default=None,
        help="Turn detection: none = manual (push-to-talk), server = server_vad, "
        "semantic = semantic_vad. Default: the server's (server_vad).")
    @argument(  # type: ignore[no-untyped-call, untyped-decorator]
        "--transcription", default="whisper-1",
        help="Input transcription model, or 'none' (default whisper-1).")
    @argument(  # type: ignore[no-untyped-call, untyped-decorator]
        "--language", default=None, help="Input language for transcription (ISO-639-1).")
    @argument(  # type: ignore[no-untyped-call, untyped-decorator]
        "--instructions", default=None, help="System instructions (quote them).")
    @argument(  # type: ignore[no-untyped-call, untyped-decorator]
        "--capture", choices=["mic", "recorder"], default="mic",
        help="mic: stream as you speak; recorder: record with ipywebrtc, send at stop.")
    @argument(  # type: ignore[no-untyped-call, untyped-decorator]
        "--transport", choices=["websocket", "webrtc"], default="websocket",
        help="websocket: the kernel's socket carries the audio (mic and player widgets); "
        "webrtc: the browser places a WebRTC call (its mic, echo cancellation, playback) "
        "and the kernel attaches as the call's sideband.")
    @argument(  # type: ignore[no-untyped-call, untyped-decorator]
        "--name", default=DEFAULT_NAME,
        help=f"Variable that receives the Session (default {DEFAULT_NAME}).")
    @argument(  # type: ignore[no-untyped-call, untyped-decorator]
        "--no-timeline", action="store_true", help="Leave the event timeline out.")
    @line_magic
    def realtime(self, line: str) -> Any:
        """Open a Realtime session and show its panel (``%realtime --help`` for the options)."""
        from realtime_nb.client import RealtimeError, Session
        from realtime_nb.widgets.panel import panel_for

        # IPython's own splitting keeps the quotes around quoted values; shlex removes them.
        args = self.realtime.parser.parse_args(shlex.split(line))
        if not args.name.isidentifier():
            raise ValueError(f"--name must be a Python identifier, not {args.name!r}")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "%realtime needs a running event loop (a Jupyter kernel); in a script use "
                "`async with realtime_nb.Session() as s: ...`") from None
        try:
            session = Session(backend=args.backend, url=args.url, model=args.model,
                              transport=args.transport)
        except RealtimeError as err:
            print(f"%realtime: {err}")
            return None
        patch = realtime_settings(voice=args.voice, vad=args.vad,
                                  transcription=args.transcription, language=args.language,
                                  instructions=args.instructions)
        ns = self.shell.user_ns if self.shell is not None else {}
        old = ns.get(args.name)
        if isinstance(old, Session) and old is not session and old.state != "closed":
            old_panel = vars(old).get("_rtnb_panel")
            if old_panel is not None:
                old_panel.close()
            task = loop.create_task(old.close(), name="realtime_nb: close the previous session")
            _TASKS.add(task)
            task.add_done_callback(_TASKS.discard)
        ns[args.name] = session
        panel = panel_for(session, capture=args.capture,
                          mode="push-to-talk" if args.vad == "none" else "hands-free",
                          timeline=not args.no_timeline)
        panel.connect(patch)
        return panel


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext realtime_nb``: register ``%realtime``."""
    ipython.register_magics(RealtimeMagics)
