"""SessionControls: controls generated from the typed configuration, applied live.

Pins down that the control set is derived from the wire dataclasses (a new field gets a control
without touching the widget code), that each annotation gives the right kind of control, and that
a change sends exactly the ``session.update`` it stands for and shows the server's echo — or the
service's error and hint, with the control snapped back to the echo. A recording comm stands in
for the browser; changes are delivered as the browser would send them; the server is the
scripted fake (the protocol rules of the local server, no models).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets
import pytest
from fake_session import session
from widget_comm import browser_update, recording_comm

from realtime_nb import Session
from realtime_nb.client.testing import FakeRealtimeServer
from realtime_nb.protocol.config import (
    VOICES,
    AudioInput,
    NoiseReduction,
    SemanticVad,
    ServerVad,
    Transcription,
)
from realtime_nb.protocol.schema import Unset, fields_of, fld
from realtime_nb.widgets.controls import DEFAULT, OFF, ON, SessionControls, control_specs

__all__ = ["recording_comm", "session"]  # the fixtures, used by name

pytestmark = pytest.mark.usefixtures("recording_comm")

TD = "audio.input.turn_detection"


@dataclass
class ServerVadPlus(ServerVad):
    """ServerVad with one more field, as a future service version might add."""

    min_speech_ms: int | Unset = fld(250, "Shortest speech that opens a turn (ms).", ge=0,
                                     le=2000)


@dataclass
class InputPlus(AudioInput):
    turn_detection: ServerVadPlus | SemanticVad | None | Unset = fld(None)


@pytest.fixture
async def fake() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer(reply_text="Fine. Thanks.", reply_audio_ms=200) as server:
        yield server


async def _settle(controls: SessionControls) -> None:
    """Let the background update tasks finish."""
    import asyncio

    from realtime_nb.widgets import controls as mod

    while mod._TASKS:
        await asyncio.gather(*list(mod._TASKS))


def choose(dropdown: widgets.Dropdown, value: Any) -> None:
    """Pick an option in the page (a dropdown syncs its ``index``, not its value)."""
    index = [v for _label, v in dropdown.options].index(value)
    browser_update(dropdown, index=index)


def _updates(fake: FakeRealtimeServer) -> list[dict[str, Any]]:
    return [e["session"] for e in fake.received if e["type"] == "session.update"]


# ----------------------------------------------------------------------------- generation
def test_every_turn_detection_field_of_both_vad_types_has_a_control() -> None:
    """The control set is the schema's: every field of ServerVad and SemanticVad but the tag."""
    keys = {s.key for s in control_specs()}
    for tag, cls in (("server_vad", ServerVad), ("semantic_vad", SemanticVad)):
        expected = {f"{TD}[{tag}].{name}" for name, _tp, _i in fields_of(cls) if name != "type"}
        assert {k for k in keys if k.startswith(f"{TD}[{tag}].")} == expected
    assert {TD, "instructions", "output_modalities", "audio.output.voice",
            "audio.output.speed"} <= keys


def test_transcription_and_noise_reduction_controls_cover_their_scalar_fields() -> None:
    """Free lists (``languages``, ``keywords``) have no control: set them in code."""
    keys = {s.key for s in control_specs()}
    tr = {k.rsplit(".", 1)[1] for k in keys if k.startswith("audio.input.transcription[on].")}
    lists = {name for name, tp, _i in fields_of(Transcription) if "list" in str(tp)}
    assert tr == {name for name, _tp, _i in fields_of(Transcription)} - lists
    assert lists == {"languages", "keywords"}
    nr = {k.rsplit(".", 1)[1] for k in keys if k.startswith("audio.input.noise_reduction[on].")}
    assert nr == {name for name, _tp, _i in fields_of(NoiseReduction)}


def test_a_field_added_to_server_vad_gets_a_control_without_touching_the_widget() -> None:
    controls = SessionControls(live_fields=[("Turn detection", InputPlus, ("audio", "input"),
                                             ("turn_detection",))])
    key = f"{TD}[server_vad].min_speech_ms"
    slider = controls.inputs[key]
    assert isinstance(slider, widgets.IntSlider)
    assert (slider.min, slider.max, slider.value) == (0, 2000, 250)
    assert controls.specs[key].info.doc == "Shortest speech that opens a turn (ms)."


def test_each_annotation_gives_its_kind_of_control() -> None:
    c = SessionControls()
    threshold = c.inputs[f"{TD}[server_vad].threshold"]
    assert isinstance(threshold, widgets.FloatSlider)
    assert (threshold.min, threshold.max, threshold.value) == (0.0, 1.0, 0.5)
    silence = c.inputs[f"{TD}[server_vad].silence_duration_ms"]
    assert isinstance(silence, widgets.IntSlider) and silence.step == 10
    assert silence.value == 200, "the service's real default, from the schema"
    idle = f"{TD}[server_vad].idle_timeout_ms"
    assert c._off_boxes[idle].value is True and c.inputs[idle].disabled, "null by default"
    assert isinstance(c.inputs[f"{TD}[semantic_vad].create_response"], widgets.Checkbox)
    eagerness = c.inputs[f"{TD}[semantic_vad].eagerness"]
    assert [v for _l, v in eagerness.options] == ["low", "medium", "high", "auto"]
    assert isinstance(c.inputs["instructions"], widgets.Textarea)
    assert [v for _l, v in c.inputs["audio.output.voice"].options] == list(VOICES)
    assert [v for _l, v in c.inputs[TD].options] == [OFF, "server_vad", "semantic_vad"]
    assert [v for _l, v in c.inputs["audio.input.transcription"].options] == [OFF, ON]
    delay = c.inputs["audio.input.transcription[on].delay"]
    assert delay.value == DEFAULT, "a field the service leaves unset can stay out of the patch"


def test_only_the_chosen_turn_detection_type_shows_its_fields() -> None:
    c = SessionControls()
    boxes = c._variant_boxes[TD]
    assert boxes["server_vad"].layout.display == ""
    assert boxes["semantic_vad"].layout.display == "none"


# ----------------------------------------------------------------------------- applying
async def test_moving_the_threshold_sends_the_whole_vad_object_and_shows_the_echo(
        fake: FakeRealtimeServer, session: Session) -> None:
    c = SessionControls(session)
    key = f"{TD}[server_vad].threshold"
    browser_update(c.inputs[key], value=0.7000000000000001)
    assert "applying" in c.notes[key].value
    await _settle(c)
    sent = _updates(fake)[-1]
    assert sent["type"] == "realtime"
    assert sent["audio"]["input"]["turn_detection"] == {
        "type": "server_vad", "threshold": 0.7, "prefix_padding_ms": 300,
        "silence_duration_ms": 200, "idle_timeout_ms": None, "create_response": True,
        "interrupt_response": True}
    assert session.config["audio"]["input"]["turn_detection"]["threshold"] == 0.7
    assert "✓ server: 0.7" in c.notes[key].value
    assert c.inputs[key].value == 0.7


async def test_choosing_off_sends_null_turn_detection(fake: FakeRealtimeServer,
                                                      session: Session) -> None:
    c = SessionControls(session)
    choose(c.inputs[TD], OFF)
    await _settle(c)
    assert _updates(fake)[-1]["audio"]["input"]["turn_detection"] is None
    assert session.config["audio"]["input"]["turn_detection"] is None
    assert c._variant_boxes[TD]["server_vad"].layout.display == "none"
    assert "✓ server: null" in c.notes[TD].value


async def test_switching_to_semantic_vad_sends_its_own_fields(fake: FakeRealtimeServer,
                                                              session: Session) -> None:
    c = SessionControls(session)
    choose(c.inputs[TD], "semantic_vad")
    await _settle(c)
    assert _updates(fake)[-1]["audio"]["input"]["turn_detection"] == {
        "type": "semantic_vad", "eagerness": "auto", "create_response": True,
        "interrupt_response": True}
    assert session.config["audio"]["input"]["turn_detection"]["type"] == "semantic_vad"


async def test_turning_transcription_on_sends_the_model_and_leaves_unset_fields_out(
        fake: FakeRealtimeServer, session: Session) -> None:
    c = SessionControls(session)
    browser_update(c.inputs["audio.input.transcription[on].language"], value="fr")
    await _settle(c)
    assert _updates(fake) == [], "a field of an object that is off waits until it is on"
    assert "sent when transcription is on" in c.notes[
        "audio.input.transcription[on].language"].value
    choose(c.inputs["audio.input.transcription"], ON)
    await _settle(c)
    assert _updates(fake)[-1]["audio"]["input"]["transcription"] == {
        "model": "whisper-1", "language": "fr"}
    assert session.config["audio"]["input"]["transcription"]["language"] == "fr"


async def test_a_refused_change_shows_the_message_and_hint_and_snaps_back(
        fake: FakeRealtimeServer, session: Session) -> None:
    """The voice is locked once the assistant has spoken: the service's error, shown in place."""
    await session.say("Hello?")
    c = SessionControls(session)
    voice = c.inputs["audio.output.voice"]
    choose(voice, "marin")
    await _settle(c)
    note = c.notes["audio.output.voice"].value
    assert "Cannot update a conversation&#x27;s voice if assistant audio is present." in note
    assert "Start a new session" in note, "the hint is shown too"
    assert voice.value == "alloy", "the control re-synced to the server's echo"
    assert [e.code for e in c.errors] == ["cannot_update_voice"]


async def test_updates_made_in_code_resync_the_controls(session: Session) -> None:
    c = SessionControls(session)
    await session.update(instructions="Answer in French.", voice="cedar")
    c.sync()
    assert c.inputs["instructions"].value == "Answer in French."
    assert c.inputs["audio.output.voice"].value == "cedar"


async def test_before_connect_the_controls_show_the_defaults_and_queue_changes(
        fake: FakeRealtimeServer) -> None:
    s = Session(url=fake.url)
    c = SessionControls(s)
    assert c.inputs["instructions"].value.startswith("You are a helpful local assistant")
    browser_update(c.inputs["audio.output.speed"], value=1.25)
    await _settle(c)
    assert "queued" in c.notes["audio.output.speed"].value
    await s.connect()
    await s.wait_for("session.updated")
    assert s.config["audio"]["output"]["speed"] == 1.25
    await s.close()
