"""The API key never shows: not in a saved notebook (outputs and widget state), nor in exported
traces and timelines, DEBUG logs, reprs, error texts — on the client or on the server.

A recognizable fake key is used throughout, and every scan first proves that it sees the real
content (the reply text, the instructions in the widget state, the masked handshake header), so
that an empty file cannot pass for a clean one.

Covered elsewhere, not repeated: reprs, errors, the Session's DEBUG handshake logs and JSONL
traces against the fake server (tests/test_client_secrets.py); every widget's state and every
comm message of a SessionPanel (tests/test_panel_session.py::
test_no_widget_state_or_message_carries_the_api_key).
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from reliability_fixtures import ServerProcess
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from realtime_nb.server import LocalServer

KEY = "sk-test-LEAKCHECK-9c4e7a1f3b2d"

NOTEBOOK_CELLS = [
    # 0: everything that is logged, at DEBUG, goes to a file
    """import logging, os, pathlib
OUT = pathlib.Path(os.environ["RTNB_OUT"])
logging.basicConfig(filename=OUT / "debug.log", level=logging.DEBUG, force=True)""",
    # 1: a local server that requires the key; a session that has it (read from the
    # environment, never written in a cell)
    """from realtime_nb import Session, RealtimeError
from realtime_nb.server import LocalServer
from realtime_nb.client.testing import tone_pcm16
server = LocalServer(port=0, api_key=os.environ["RTNB_KEY"])
await server.start(warm_up=False)
s = Session(url=server.url + "?model=gpt-realtime", api_key=os.environ["RTNB_KEY"])
await s.connect()
await s.update(instructions="Answer like a parrot.")
reply = await s.say("Hello parrot", output_modalities=["text"])
await s.send_audio(tone_pcm16(300))
print(reply.text)""",
    # 2: the session's panel (what displaying a Session shows), a timeline and a mic beside it
    """from realtime_nb.widgets import MicWidget, Timeline
display(Timeline(s), MicWidget())
s""",
    # 3: reprs, the log, and the errors of a wrong key, printed
    """print(repr(s), s.url, s.config, s.user_config, s.events, sep="\\n")
for entry in s.events:
    print(entry)
bad = Session(url=server.url + "?model=gpt-realtime", api_key=os.environ["RTNB_KEY"] + "-wrong")
try:
    await bad.connect()
except RealtimeError as err:
    import traceback
    traceback.print_exc()
    print(repr(err), err.to_dict(), repr(bad), bad.last_error)""",
    # 4: an error left uncaught: its traceback is saved in the notebook
    """await Session(url="ws://127.0.0.1:9/v1/realtime", api_key=os.environ["RTNB_KEY"],
              connect_timeout=2).connect()""",
    # 5: exports
    """from realtime_nb.widgets import timeline_html
s.events.to_jsonl(OUT / "trace.jsonl")
timeline_html(s, OUT / "timeline.html")
await s.close()
await server.stop()
print("exported")""",
]


def test_a_saved_notebook_with_widget_state_and_its_exports_never_hold_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RTNB_KEY", KEY)
    monkeypatch.setenv("RTNB_OUT", str(tmp_path))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in NOTEBOOK_CELLS]
    nb.cells[4].metadata["tags"] = ["raises-exception"]
    client = NotebookClient(nb, kernel_name="python3", timeout=120, store_widget_state=True,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    saved = tmp_path / "session.ipynb"
    nbformat.write(nb, saved)

    notebook = saved.read_text()
    outputs = json.dumps([c.get("outputs") for c in nb.cells])
    state = json.dumps(nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"])
    trace = (tmp_path / "trace.jsonl").read_text()
    timeline = (tmp_path / "timeline.html").read_text()
    log = (tmp_path / "debug.log").read_text()
    # the scans see the real content ...
    assert 'You said: \\"Hello parrot\\".' in outputs and "exported" in outputs
    assert "invalid_api_key" in outputs and "Traceback" in outputs
    assert "connect_failed" in json.dumps(nb.cells[4].outputs)
    assert "Answer like a parrot." in state and state.count('"model_name"') >= 20
    assert "Hello parrot" in trace and "Hello parrot" in timeline
    assert "Authorization: ***" in log, "the handshake was logged (masked)"
    # ... and never the key
    for name, text in (("notebook", notebook), ("trace", trace), ("timeline", timeline),
                       ("debug log", log)):
        assert KEY not in text, f"the key is in the {name}"


async def test_the_server_never_logs_a_key_given_in_a_header_or_a_subprotocol(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Browsers cannot set headers, so they put the key in a subprotocol
    (``openai-insecure-api-key.<key>``): both ways, right or wrong, it stays out of the server's
    DEBUG logs and out of the 401 answer."""
    caplog.set_level(logging.DEBUG)
    async with LocalServer(port=0, api_key=KEY) as srv:
        url = f"{srv.url}?model=gpt-realtime"
        ws = await connect(url, subprotocols=["realtime", f"openai-insecure-api-key.{KEY}"])
        assert json.loads(await ws.recv())["type"] == "session.created"
        assert ws.subprotocol == "realtime"
        await ws.close()
        ws = await connect(url, additional_headers={"Authorization": f"Bearer {KEY}"})
        assert json.loads(await ws.recv())["type"] == "session.created"
        await ws.close()
        refusals = []
        for options in ({"subprotocols": ["realtime", f"openai-insecure-api-key.{KEY}x"]},
                        {"additional_headers": {"Authorization": f"Bearer {KEY}x"}}):
            with pytest.raises(InvalidStatus) as info:
                await connect(url, **options)  # type: ignore[arg-type]
            refusals.append(info.value.response)
    assert [r.status_code for r in refusals] == [401, 401]
    for r in refusals:
        assert KEY not in (r.body or b"").decode() and KEY not in str(r.headers)
    # the raw test client above is plain websockets (it logs what it sends); the server is ours
    server_log = "\n".join(r.getMessage() for r in caplog.records
                           if r.name.startswith("realtime_nb"))
    assert "Sec-WebSocket-Protocol: ***" in server_log and "Authorization: ***" in server_log
    assert KEY not in server_log


_CLIENT = """
import asyncio, sys
from websockets.asyncio.client import connect

async def main(url, key):
    for k in (key, key + "x"):
        try:
            ws = await connect(url, additional_headers={"Authorization": "Bearer " + k})
            print("accepted", (await ws.recv())[:40])
            await ws.close()
        except Exception as e:
            print("refused", type(e).__name__)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_the_command_line_server_prints_no_key() -> None:
    """``python -m realtime_nb.server --api-key KEY -v`` with right and wrong clients: its output
    (INFO logs included) never shows the key."""
    server = ServerProcess(0, "--api-key", KEY, "-v")
    try:
        client = subprocess.run([sys.executable, "-c", _CLIENT, server.url, KEY],
                                capture_output=True, text=True, timeout=60, check=True)
    finally:
        output = server.stop()
    assert "accepted" in client.stdout and "refused InvalidStatus" in client.stdout
    assert "127.0.0.1" in output and "401" in output, output
    assert KEY not in output


def _session_repr_holders(session: Any) -> list[str]:
    return [repr(session), str(session), repr(session._backend), str(vars(session))]


async def test_a_session_against_a_keyed_local_server_shows_no_key_anywhere(tmp_path: Path
                                                                            ) -> None:
    """The real local server (not the fake one): reprs, the mirror, the log, the export."""
    from realtime_nb import Session

    async with LocalServer(port=0, api_key=KEY) as srv, Session(
            url=f"{srv.url}?model=gpt-realtime", api_key=KEY) as s:
        await s.say("hello", output_modalities=["text"])
        texts = [*_session_repr_holders(s), str(s.config), str(s.mirror.session),
                 s.events.to_jsonl(tmp_path / "t.jsonl").read_text()]
        assert "hello" in texts[-1]
        for text in texts:
            assert KEY not in text
    await asyncio.sleep(0)
