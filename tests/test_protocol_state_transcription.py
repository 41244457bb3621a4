"""The state machine's transcription detail and noise filter: logprobs only when `include`
names them, the settings speculation must match, and the input noise filter's place in the
append path (scripted, stand-in filters).
"""

from __future__ import annotations

import base64

from state_fixtures import append, core, manual, silence, tone

LOGPROBS = "item.input_audio_transcription.logprobs"


def test_transcription_jobs_ask_for_logprobs_only_when_include_names_them():
    """...and only when transcription events will carry them (transcription on)."""
    c = core()
    manual(c)

    def commit_logprobs() -> bool:
        c.handle(append(tone(300)))
        c.handle({"type": "input_audio_buffer.commit"})
        return c.take_jobs()[0].payload["logprobs"]

    c.handle({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "transcription": {"model": "whisper-1"}}}}})
    assert commit_logprobs() is False
    c.handle({"type": "session.update", "session": {"type": "realtime", "include": [LOGPROBS]}})
    assert c.drain()[-1]["session"]["include"] == [LOGPROBS]
    assert commit_logprobs() is True
    c.handle({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "transcription": None}}}})
    assert commit_logprobs() is False


def test_transcription_events_carry_logprobs_only_when_given():
    """The core sends the ``logprobs`` field only when the owner passes it (``None`` is sent as
    null: asked for, but the engine has none); without it the events look as they always did."""
    c = core(kind="transcription")
    c.handle(append(tone(300)))
    c.handle({"type": "input_audio_buffer.commit"})
    item_id = c.take_jobs()[0].payload["item_id"]
    c.drain()
    lp = [{"token": " hi", "logprob": -0.1, "bytes": [32, 104, 105]}]
    c.transcription_delta(item_id, "hi", logprobs=lp)
    c.transcription_done(item_id, "hi", logprobs=lp)
    c.transcription_delta(item_id, "hi")
    c.transcription_done(item_id, "hi")
    c.transcription_done(item_id, "hi", logprobs=None)
    d1, c1, d2, c2, c3 = c.drain()
    assert d1["logprobs"] == lp and c1["logprobs"] == lp
    assert "logprobs" not in d2 and "logprobs" not in c2
    assert c3["logprobs"] is None


def test_speculation_carries_the_transcription_settings_it_must_match():
    """A speculative transcription is only reusable by a turn that wants the same model,
    language, prompt and logprobs: the job says which it ran with."""
    c = core()
    c.handle({"type": "session.update", "session": {"type": "realtime", "include": [LOGPROBS],
              "audio": {"input": {"transcription": {"model": "whisper-1", "prompt": "Shaun"}}}}})
    c.handle(append(tone(600) + silence(800)))
    spec = next(j for j in c.take_jobs() if j.kind == "speculate")
    assert spec.payload["config"]["prompt"] == "Shaun" and spec.payload["logprobs"] is True


class Negate:
    """A stand-in noise filter: flips every PCM16 sample's sign (same length, exact)."""

    def __init__(self, config: dict, fmt: dict) -> None:
        self.config, self.fmt = config, fmt

    def process(self, data: bytes) -> bytes:
        import numpy as np

        return (-np.frombuffer(data, "<i2")).astype("<i2").tobytes()


def _filters(made: list) -> object:
    def make(config: dict | None, fmt: dict) -> Negate:
        made.append(Negate(config, fmt))
        return made[-1]
    return make


def test_noise_filter_runs_on_appended_audio_before_it_is_committed_and_retrieved():
    made: list[Negate] = []
    c = core(noise_filter=_filters(made))
    assert c.noise_filter is None and made == []  # noise_reduction is null by default
    c.handle({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "noise_reduction": {"type": "far_field"}, "turn_detection": None}}}})
    assert made[-1].config == {"type": "far_field", "strength": 1.0}
    audio = tone(300)
    c.handle(append(audio))
    c.handle({"type": "input_audio_buffer.commit"})
    (job,) = c.take_jobs()
    assert job.payload["audio"] == Negate({}, {}).process(audio)
    c.drain()
    c.handle({"type": "conversation.item.retrieve", "item_id": job.payload["item_id"]})
    retrieved = c.drain()[0]["item"]["content"][0]["audio"]
    assert base64.b64decode(retrieved) == Negate({}, {}).process(audio)


def test_noise_reduction_null_turns_the_filter_off_and_a_change_builds_a_new_one():
    made: list[Negate] = []
    c = core(noise_filter=_filters(made))
    nr = {"type": "near_field", "strength": 0.5}
    c.handle({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "noise_reduction": nr, "turn_detection": None}}}})
    first = c.noise_filter
    assert first is made[-1] and first.config == nr
    c.handle({"type": "session.update", "session": {"type": "realtime", "instructions": "x"}})
    assert c.noise_filter is first  # unrelated updates keep the filter (and its state)
    c.handle({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "noise_reduction": {"type": "far_field"}}}}})
    assert c.noise_filter is not first and c.noise_filter.config["type"] == "far_field"
    c.handle({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "noise_reduction": None}}}})
    assert c.noise_filter is None
    audio = tone(200)
    c.handle(append(audio))
    c.handle({"type": "input_audio_buffer.commit"})
    assert c.take_jobs()[0].payload["audio"] == audio


def test_noise_filter_is_rebuilt_for_a_new_input_format():
    made: list[Negate] = []
    c = core(noise_filter=_filters(made))
    c.handle({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "noise_reduction": {"type": "near_field"}}}}})
    c.handle({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "format": {"type": "audio/pcmu"}}}}})
    assert [m.fmt["type"] for m in made] == ["audio/pcm", "audio/pcmu"]
