"""Decoding: containers, MediaRecorder WebM, raw PCM (declared only), numpy arrays, and refusals.

The rule pinned down here: whatever is decodable becomes mono int16 ``Audio`` with its true
rate; whatever is not raises ``AudioError`` saying why. Nothing is guessed: raw PCM without a
declaration, ambiguous arrays and corrupted files are refused rather than turned into noise.
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from audio_fixtures import (
    CHROMIUM_META,
    CHROMIUM_WEBM,
    correlation,
    noise,
    to_int16,
    tone,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realtime_nb.audio import (
    Audio,
    AudioError,
    decode,
    decode_raw,
    from_array,
    sniff_container,
    to_pcm16,
)

LOSSLESS = ["wav_s16", "wav_s16_stereo", "wav_s24", "wav_s32", "wav_f32", "wav_f64", "flac", "aiff"]
LOSSY = ["mp3", "m4a", "ogg_opus", "ogg_vorbis_stereo", "webm_opus", "webm_opus_stereo"]


# --------------------------------------------------------------------------- containers

@pytest.mark.parametrize("name", LOSSLESS)
def test_lossless_containers_decode_to_the_exact_samples(
    name: str, spoken_files: dict[str, bytes], spoken: Audio
) -> None:
    """16/24/32-bit int, float32/64 WAV, FLAC and AIFF of the same speech give identical samples."""
    audio = decode(spoken_files[name])
    assert audio.sample_rate == spoken.sample_rate
    assert np.array_equal(audio.samples, spoken.samples)


@pytest.mark.parametrize(("name", "family"), [
    ("wav_s16", "WAV"), ("flac", "FLAC"), ("aiff", "AIFF"), ("mp3", "MP3"), ("m4a", "MP4/M4A"),
    ("ogg_opus", "Ogg"), ("webm_opus", "WebM/Matroska"),
])
def test_containers_are_recognised_by_their_first_bytes(
    name: str, family: str, spoken_files: dict[str, bytes]
) -> None:
    sniffed = sniff_container(spoken_files[name][:16])
    assert sniffed is not None and sniffed[0] == family


def test_raw_pcm_is_not_recognised_as_a_container(spoken_24k: Audio) -> None:
    assert sniff_container(spoken_24k.to_pcm16()[:16]) is None


def test_a_forced_container_must_match_the_bytes(spoken_files: dict[str, bytes]) -> None:
    assert len(decode(spoken_files["flac"], container="flac")) > 0
    with pytest.raises(AudioError, match="start like FLAC"):
        decode(spoken_files["flac"], container="ogg")
    with pytest.raises(AudioError, match="Unknown container"):
        decode(spoken_files["flac"], container="tape")


def test_8_bit_wav_decodes_within_its_quantisation_step(
    spoken_files: dict[str, bytes], spoken: Audio
) -> None:
    audio = decode(spoken_files["wav_u8"])
    diff = np.abs(audio.samples.astype(np.int32) - spoken.samples.astype(np.int32))
    assert len(audio) == len(spoken) and diff.max() <= 129  # half of 1/128 full scale, rounded


@pytest.mark.parametrize("name", LOSSY)
def test_lossy_containers_decode_to_the_same_speech(
    name: str, spoken_files: dict[str, bytes], spoken: Audio
) -> None:
    """MP3, AAC, Vorbis and Opus decode to audio of the right length that correlates with the
    source.

    (Lengths may differ by the codec's priming and last-frame padding: AAC frames are 46 ms.)
    """
    audio = decode(spoken_files[name], to_rate=spoken.sample_rate)
    assert audio.duration_ms == pytest.approx(spoken.duration_ms, abs=100)
    assert correlation(audio.samples, spoken.samples) > 0.9


@pytest.mark.parametrize("name", ["ogg_opus", "webm_opus"])
def test_opus_keeps_its_48_khz_rate(name: str, spoken_files: dict[str, bytes]) -> None:
    assert decode(spoken_files[name]).sample_rate == 48_000


@pytest.mark.parametrize("name", LOSSLESS + LOSSY)
def test_to_pcm16_gives_24_khz_pcm16_of_the_same_duration(
    name: str, spoken_files: dict[str, bytes], spoken: Audio
) -> None:
    data = to_pcm16(spoken_files[name])
    assert isinstance(data, bytes) and len(data) % 2 == 0
    assert len(data) / 48 == pytest.approx(spoken.duration_ms, abs=100)


def test_to_pcm16_of_wav_matches_a_direct_resample(
    spoken_files: dict[str, bytes], spoken_24k: Audio
) -> None:
    assert to_pcm16(spoken_files["wav_s16"]) == spoken_24k.to_pcm16()


def test_a_path_a_str_path_and_a_file_object_decode_alike(spoken_wav: Path, spoken: Audio) -> None:
    for source in (spoken_wav, str(spoken_wav), spoken_wav.open("rb"),
                   bytearray(spoken_wav.read_bytes()), memoryview(spoken_wav.read_bytes())):
        assert np.array_equal(decode(source).samples, spoken.samples)


def test_a_declared_rate_matching_the_file_is_accepted(spoken_wav: Path) -> None:
    assert decode(spoken_wav, 22_050).sample_rate == 22_050


def test_a_declared_rate_contradicting_the_file_is_refused(spoken_wav: Path) -> None:
    with pytest.raises(AudioError, match="22050 Hz but sample_rate=16000"):
        to_pcm16(spoken_wav, 16_000)


def test_a_missing_file_is_refused_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"No such audio file.*nope\.wav"):
        decode(tmp_path / "nope.wav")


def test_a_long_str_that_is_not_a_path_hints_at_base64() -> None:
    with pytest.raises(AudioError, match="base64"):
        decode("UklGR" + "A" * 400)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="directory"):
        decode(tmp_path)


def test_a_text_mode_file_is_refused(spoken_wav: Path) -> None:
    with spoken_wav.open("r", encoding="latin-1") as f, pytest.raises(AudioError, match="binary"):
        decode(f)


@pytest.mark.parametrize("source", [b"", bytearray(), io.BytesIO(b"")])
def test_empty_input_is_refused(source: object) -> None:
    with pytest.raises(AudioError, match="empty"):
        decode(source)  # type: ignore[arg-type]


def test_a_container_with_no_decodable_audio_is_refused(spoken_files: dict[str, bytes]) -> None:
    """The first 60 bytes of a WAV (header, no samples) hold nothing to decode."""
    with pytest.raises(AudioError):
        decode(spoken_files["wav_s16"][:40])


def test_a_corrupted_middle_is_refused_not_papered_over(spoken_files: dict[str, bytes]) -> None:
    """Random bytes in the middle of an MP3 make a frame fail while audio follows: refuse."""
    data = bytearray(spoken_files["mp3"])
    mid = len(data) // 2
    data[mid:mid + 400] = np.random.default_rng(0).integers(0, 256, 400, np.uint8).tobytes()
    with pytest.raises(AudioError, match="corrupted in the middle"):
        decode(bytes(data))


def test_truncated_files_give_the_decodable_prefix(spoken_files: dict[str, bytes]) -> None:
    for name in ("wav_s16", "flac", "mp3", "webm_opus"):
        full = decode(spoken_files[name])
        cut = decode(spoken_files[name][: len(spoken_files[name]) * 2 // 3])
        assert 0.4 * full.duration_ms < cut.duration_ms < 0.8 * full.duration_ms, name


def test_ogg_cut_inside_its_first_audio_page_is_refused(spoken_files: dict[str, bytes]) -> None:
    """Ogg pages are all-or-nothing: without one complete audio page there is nothing to play."""
    data = spoken_files["ogg_opus"]
    second_page = data.index(b"OggS", 4)
    first_audio_page = data.index(b"OggS", second_page + 4)
    with pytest.raises(AudioError):
        decode(data[: first_audio_page + 200])


def test_to_pcm16_refuses_raw_pcm_bytes(spoken_24k: Audio) -> None:
    """Raw samples have no header: they must be declared, never guessed."""
    with pytest.raises(AudioError, match=r"decode_raw\(data, sample_rate=24000, dtype='int16'\)"):
        to_pcm16(spoken_24k.to_pcm16())


def test_to_pcm16_refuses_raw_bytes_even_with_a_rate(spoken_24k: Audio) -> None:
    with pytest.raises(AudioError, match="never guessed"):
        to_pcm16(spoken_24k.to_pcm16(), 24_000)


def test_to_pcm16_takes_raw_bytes_once_declared(spoken_24k: Audio) -> None:
    data = spoken_24k.to_pcm16()
    assert to_pcm16(data, 24_000, raw="int16") == data


def test_to_pcm16_of_an_audio_resamples_it(spoken: Audio, spoken_24k: Audio) -> None:
    assert to_pcm16(spoken) == spoken_24k.to_pcm16()


def test_an_audio_with_a_contradicting_rate_is_refused(spoken: Audio) -> None:
    with pytest.raises(AudioError, match="carries its own rate"):
        decode(spoken, 48_000)


@pytest.mark.parametrize("source", [[0, 1, 2], (0.0, 0.1), 42, None])
def test_unsupported_source_types_are_refused(source: object) -> None:
    with pytest.raises(AudioError):
        decode(source)  # type: ignore[arg-type]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefix=st.sampled_from([b"", b"RIFF\x00\x10\x00\x00WAVEfmt ", b"OggS\x00\x02", b"fLaC",
                            b"\x1a\x45\xdf\xa3", b"ID3\x04\x00", b"\xff\xfb\x90\x00"]),
    body=st.binary(min_size=0, max_size=3000),
)
def test_garbage_only_ever_raises_audio_error(prefix: bytes, body: bytes) -> None:
    """Random bytes, even behind a real container's magic, decode or raise AudioError: no crash,
    no other exception type."""
    try:
        audio = decode(prefix + body)
    except AudioError:
        return
    assert isinstance(audio, Audio)


# --------------------------------------------------------------------------- parallel Opus decoding

@pytest.mark.parametrize("to_rate", [None, 24_000, 16_000, 8_000, 44_100])
@pytest.mark.parametrize("kind", ["webm", "ogg"])
def test_parallel_opus_decoding_matches_sequential_decoding(
    long_opus_files: dict[str, bytes], kind: str, to_rate: int | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Long Opus streams are decoded (and resampled) in segments on several threads; the
    result must be the sequential one, within one 16-bit step (decoder convergence)."""
    from realtime_nb.audio import _parallel

    data = long_opus_files[kind]
    monkeypatch.setattr(_parallel, "_workers", lambda: 2)  # take the parallel path on any machine
    prerolls: list[int] = []
    original = _parallel._decode_segment
    monkeypatch.setattr(_parallel, "_decode_segment",
                        lambda *a, **k: prerolls.append(len(a[1])) or original(*a, **k))
    parallel = decode(data, to_rate=to_rate)
    assert len(prerolls) == 1 and prerolls[0] > 0  # a second decoder, started with a pre-roll
    monkeypatch.setattr(_parallel, "PARALLEL_MIN_SECONDS", float("inf"))
    sequential = decode(data, to_rate=to_rate)
    assert parallel.sample_rate == sequential.sample_rate
    assert len(parallel) == len(sequential)
    diff = np.abs(parallel.samples.astype(np.int32) - sequential.samples.astype(np.int32))
    assert diff.max() <= 1


def test_parallel_decoding_of_a_truncated_long_recording(
    long_opus_files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    from realtime_nb.audio import _parallel

    monkeypatch.setattr(_parallel, "_workers", lambda: 2)
    data = long_opus_files["webm"]
    full = decode(data, to_rate=24_000)
    cut = decode(data[: len(data) * 9 // 10], to_rate=24_000)
    assert 0.8 * full.duration_ms < cut.duration_ms < full.duration_ms
    diff = np.abs(cut.samples.astype(np.int32) - full.samples[: len(cut)].astype(np.int32))
    assert diff[: len(cut) - 2400].max() <= 1  # the resampler's last few ms see the cut


# --------------------------------------------------------------------------- Chromium MediaRecorder

def test_chromium_recording_has_no_duration_in_its_header(chromium_webm: bytes) -> None:
    """Pins down the fixture itself: MediaRecorder writes no duration (a live stream)."""
    with av.open(io.BytesIO(chromium_webm)) as container:
        assert container.format.name.startswith("matroska")
        assert container.duration is None
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "opus"
        assert stream.codec_context.layout.nb_channels == 1


def test_chromium_recording_decodes_at_48_khz_for_about_3_seconds(chromium_webm: bytes) -> None:
    audio = decode(chromium_webm)
    assert audio.sample_rate == 48_000
    assert 2_700 <= audio.duration_ms <= 3_300


def test_chromium_recording_holds_the_spoken_sentence(
    chromium_webm: bytes, tmp_path: Path
) -> None:
    """The recording correlates with the espeak-ng sentence that was fed to the fake mic."""
    sentence = json.loads(CHROMIUM_META.read_text())["sentence"]
    source = tmp_path / "source.wav"
    subprocess.run(["espeak-ng", "-w", str(source), sentence], check=True)
    recorded = decode(chromium_webm, to_rate=16_000)
    spoken = decode(source, to_rate=16_000)
    assert recorded.rms_dbfs > -40
    assert correlation(recorded.samples, spoken.samples) > 0.5
    assert correlation(recorded.samples, noise(3000, 16_000)) < 0.2  # the measure discriminates


def test_chromium_recording_to_pcm16_is_3_seconds_at_24_khz(chromium_webm: bytes) -> None:
    data = to_pcm16(chromium_webm)
    assert 2_700 <= len(data) / 48 <= 3_300


def test_truncated_chromium_recording_decodes_its_prefix_exactly(chromium_webm: bytes) -> None:
    full = decode(chromium_webm)
    cut = decode(chromium_webm[: int(len(chromium_webm) * 0.6)])
    assert 1_000 < cut.duration_ms < full.duration_ms
    assert np.array_equal(cut.samples, full.samples[: len(cut)])


def test_chromium_recording_cut_anywhere_decodes_or_says_why(chromium_webm: bytes) -> None:
    """Every cut point either decodes to a prefix or raises AudioError — nothing else."""
    full = decode(chromium_webm)
    for cut in range(50, len(chromium_webm), 1499):
        try:
            part = decode(chromium_webm[:cut])
        except AudioError:
            continue
        assert len(part) <= len(full)


def test_growing_chunk_prefixes_decode_to_growing_audio(chromium_chunks: list[bytes]) -> None:
    """What a streaming recorder delivers so far (first chunk + more) is always decodable."""
    lengths = [len(decode(b"".join(chromium_chunks[: k + 1]))) for k in range(len(chromium_chunks))]
    assert lengths == sorted(lengths) and lengths[-1] > lengths[0]


def test_a_later_chunk_alone_is_refused_with_a_clear_message(
    chromium_chunks: list[bytes],
) -> None:
    for chunk in chromium_chunks[2:4]:
        with pytest.raises(AudioError, match="later chunk of a WebM/MediaRecorder recording"):
            to_pcm16(chunk)


def test_a_later_chunk_decodes_behind_the_first_one(chromium_chunks: list[bytes]) -> None:
    audio = decode(chromium_chunks[0] + chromium_chunks[3])
    assert audio.duration_ms > 400


def test_the_fixture_file_is_small() -> None:
    assert CHROMIUM_WEBM.stat().st_size < 100_000


# --------------------------------------------------------------------------- raw PCM

def test_decode_raw_int16_is_exact(spoken_24k: Audio) -> None:
    audio = decode_raw(spoken_24k.to_pcm16(), 24_000)
    assert np.array_equal(audio.samples, spoken_24k.samples)


def test_decode_raw_float32(spoken_24k: Audio) -> None:
    audio = decode_raw(spoken_24k.to_float32().tobytes(), 24_000, "float32")
    assert np.array_equal(audio.samples, spoken_24k.samples)


def test_decode_raw_float64_and_big_endian(spoken_24k: Audio) -> None:
    f = spoken_24k.to_float32().astype(np.float64)
    assert np.array_equal(decode_raw(f.tobytes(), 24_000, "float64").samples, spoken_24k.samples)
    be = spoken_24k.samples.astype(">i2").tobytes()
    assert np.array_equal(decode_raw(be, 24_000, "int16be").samples, spoken_24k.samples)


def test_decode_raw_int24_packed() -> None:
    values = np.array([0, 1 << 8, -(1 << 8), (1 << 23) - 256, -(1 << 23)], dtype=np.int32)
    packed = b"".join(int(v).to_bytes(3, "little", signed=True) for v in values)
    audio = decode_raw(packed, 48_000, "int24")
    assert audio.samples.tolist() == [0, 1, -1, 32767, -32768]


def test_decode_raw_8_bit_signed_and_unsigned() -> None:
    assert decode_raw(bytes([0, 64, 192]), 8_000, "int8").samples.tolist() == [0, 16384, -16384]
    assert decode_raw(bytes([128, 192, 0]), 8_000, "uint8").samples.tolist() == [0, 16384, -32768]


def test_decode_raw_interleaved_stereo_is_averaged() -> None:
    data = np.array([1000, 3000, -2000, -4000], dtype="<i2").tobytes()
    assert decode_raw(data, 16_000, "int16", channels=2).samples.tolist() == [2000, -3000]


def test_decode_raw_resamples_on_request(spoken_24k: Audio) -> None:
    out = decode_raw(spoken_24k.to_pcm16(), 24_000, to_rate=16_000)
    assert out.sample_rate == 16_000 and abs(len(out) - len(spoken_24k) * 2 / 3) <= 1


@pytest.mark.parametrize(("data", "dtype", "channels"), [
    (b"\x00\x00\x00", "int16", 1),
    (b"\x00" * 6, "float32", 1),
    (b"\x00" * 6, "int16", 2),
    (b"\x00" * 4, "int24", 1),
])
def test_decode_raw_refuses_partial_frames(data: bytes, dtype: str, channels: int) -> None:
    with pytest.raises(AudioError, match="whole number of"):
        decode_raw(data, 24_000, dtype, channels)


def test_decode_raw_refuses_float32_declared_as_int16(spoken_24k: Audio) -> None:
    with pytest.raises(AudioError, match="hold float32 samples"):
        decode_raw(spoken_24k.to_float32().tobytes(), 24_000, "int16")


@pytest.mark.parametrize("dtype", ["int12", "complex64", object, "bool"])
def test_decode_raw_refuses_unknown_dtypes(dtype: object) -> None:
    with pytest.raises(AudioError, match="dtype"):
        decode_raw(b"\x00" * 16, 24_000, dtype)


@pytest.mark.parametrize("rate", [None, 0, 10_000_000])
def test_decode_raw_needs_a_plausible_rate(rate: int | None) -> None:
    with pytest.raises(AudioError, match="sample_rate"):
        decode_raw(b"\x00" * 16, rate)


def test_decode_raw_refuses_empty_data() -> None:
    with pytest.raises(AudioError, match="empty"):
        decode_raw(b"", 24_000)


@pytest.mark.parametrize("channels", [0, 33, 1.5, True])
def test_decode_raw_refuses_bad_channel_counts(channels: object) -> None:
    with pytest.raises(AudioError, match="channels"):
        decode_raw(b"\x00" * 16, 24_000, "int16", channels)  # type: ignore[arg-type]


def test_channels_without_raw_is_refused(spoken_wav: Path) -> None:
    with pytest.raises(AudioError, match="channels= is only for raw"):
        decode(spoken_wav, channels=2)


# --------------------------------------------------------------------------- numpy arrays

def test_array_needs_a_sample_rate() -> None:
    with pytest.raises(AudioError, match="sample_rate is missing"):
        to_pcm16(np.zeros(100, dtype=np.float32))


def test_int16_array_at_24_khz_passes_through_exactly(spoken_24k: Audio) -> None:
    assert to_pcm16(spoken_24k.samples, 24_000) == spoken_24k.to_pcm16()


def test_array_result_does_not_share_the_callers_memory() -> None:
    x = np.array([1, 2, 3], dtype=np.int16)
    audio = from_array(x, 24_000)
    x[0] = 99
    assert audio.samples[0] == 1


@pytest.mark.parametrize(("values", "dtype", "expected"), [
    ([0.5, -1.0], np.float32, [16384, -32768]),
    ([0.5, -1.0], np.float64, [16384, -32768]),
    ([0.5, -1.0], np.float16, [16384, -32768]),
    ([64, -128], np.int8, [16384, -32768]),
    ([192, 0], np.uint8, [16384, -32768]),
    ([16384, -32768], np.int16, [16384, -32768]),
    ([49152, 0], np.uint16, [16384, -32768]),
    ([1 << 30, -(1 << 31)], np.int32, [16384, -32768]),
    ([1 << 62, -(1 << 63)], np.int64, [16384, -32768]),
    ([3 << 30, 0], np.uint32, [16384, -32768]),
])
def test_each_dtype_is_scaled_by_its_full_range(
    values: list[float], dtype: type, expected: list[int]
) -> None:
    assert from_array(np.array(values, dtype=dtype), 8_000).samples.tolist() == expected


def test_float_slightly_over_full_scale_is_clipped() -> None:
    assert from_array(np.array([1.2, -1.5], np.float32), 8_000).samples.tolist() == [32767, -32768]


def test_float_far_over_full_scale_is_refused_as_integer_scaled() -> None:
    with pytest.raises(AudioError, match=r"astype\(np.int16\)"):
        from_array(np.array([1200.0, -800.0]), 16_000)


def test_int32_holding_16_bit_values_is_refused() -> None:
    with pytest.raises(AudioError, match="all fit in 16 bits"):
        from_array(np.array([1000, -2000, 32000], dtype=np.int32), 16_000)


def test_int64_from_a_python_list_is_refused_not_silenced() -> None:
    with pytest.raises(AudioError, match="all fit in 16 bits"):
        to_pcm16(np.array([100, -200, 300]), 24_000)


def test_all_zero_wide_ints_are_just_silence() -> None:
    assert from_array(np.zeros(8, np.int32), 8_000).samples.tolist() == [0] * 8


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_are_refused(bad: float) -> None:
    with pytest.raises(AudioError, match="NaN or infinite"):
        to_pcm16(np.array([0.0, bad, 0.1], dtype=np.float32), 24_000)


@pytest.mark.parametrize("arr", [
    np.array([True, False]),
    np.array([1 + 1j]),
    np.array(["a"]),
    np.array([object()]),
])
def test_unsupported_dtypes_are_refused(arr: np.ndarray) -> None:
    with pytest.raises(AudioError, match="Unsupported sample dtype"):
        from_array(arr, 24_000)


def test_empty_array_is_refused() -> None:
    with pytest.raises(AudioError, match="empty"):
        from_array(np.zeros(0, np.float32), 24_000)


@pytest.mark.parametrize("shape", [(1000, 2), (2, 1000)])
def test_two_d_arrays_are_averaged_whichever_way_round(shape: tuple[int, int]) -> None:
    left = tone(440, 1000 / 16, 16_000, amp=0.5)
    both = np.vstack([left, np.zeros_like(left)])
    arr = both if shape[0] == 2 else both.T
    audio = from_array(arr.astype(np.float32), 16_000)
    assert np.array_equal(audio.samples, to_int16(left.astype(np.float32) / 2))


def test_single_channel_2d_arrays_are_flattened() -> None:
    arr = np.array([[1], [2], [3]], dtype=np.int16)
    assert from_array(arr, 8_000).samples.tolist() == [1, 2, 3]


@pytest.mark.parametrize("shape", [(40, 40), (2, 3, 4)])
def test_arrays_with_no_clear_channel_axis_are_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(AudioError):
        from_array(np.zeros(shape, dtype=np.float32), 8_000)


def test_big_endian_arrays_are_read_by_value() -> None:
    arr = np.array([1, -2, 300], dtype=">i2")
    assert from_array(arr, 8_000).samples.tolist() == [1, -2, 300]


def test_array_to_pcm16_resamples_to_24_khz() -> None:
    x = tone(440, 1000, 48_000).astype(np.float32)
    data = to_pcm16(x, 48_000)
    assert len(data) == 48_000  # 1 s at 24 kHz, 2 bytes a sample
