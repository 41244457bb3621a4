"""G.711 μ-law / A-law lookup tables against the standard's algorithm, on every input.

The reference below is a sample-by-sample transcription of the ITU-T reference software
(G.191 Software Tool Library, ``g711.c``: ``ulaw_compress``, ``alaw_compress``, ``ulaw_expand``,
``alaw_expand``), written independently of the vectorised table builders in
``realtime_nb/audio/_g711.py``.
"""

from __future__ import annotations

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from realtime_nb.audio import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))


def ref_ulaw_compress(x: int) -> int:
    absno = ((~x) >> 2) + 33 if x < 0 else (x >> 2) + 33  # one's complement for negatives
    absno = min(absno, 0x1FFF)
    i = absno >> 6
    segno = 1
    while i != 0:
        segno += 1
        i >>= 1
    high_nibble = 0x8 - segno
    low_nibble = 0xF - ((absno >> segno) & 0xF)
    code = (high_nibble << 4) | low_nibble
    return code | 0x80 if x >= 0 else code


def ref_alaw_compress(x: int) -> int:
    ix = (~x) >> 4 if x < 0 else x >> 4
    if ix > 15:
        iexp = 1
        while ix > 16 + 15:
            ix >>= 1
            iexp += 1
        ix -= 16
        ix += iexp << 4
    if x >= 0:
        ix |= 0x80
    return ix ^ 0x55


def ref_ulaw_expand(code: int) -> int:
    sign = -1 if code < 0x80 else 1
    mantissa = ~code
    exponent = (mantissa >> 4) & 0x7
    segment = exponent + 1
    mantissa &= 0xF
    step = 4 << segment
    return sign * ((0x80 << exponent) + step * mantissa + step // 2 - 4 * 33)


def ref_alaw_expand(code: int) -> int:
    ix = (code ^ 0x55) & 0x7F
    iexp = ix >> 4
    mant = ix & 0xF
    if iexp > 0:
        mant += 16
    mant = (mant << 4) + 0x8
    if iexp > 1:
        mant <<= iexp - 1
    return mant if code > 127 else -mant


def test_ulaw_encoding_matches_the_standard_on_all_65536_inputs() -> None:
    got = np.frombuffer(ulaw_encode(ALL_INT16), dtype=np.uint8)
    expected = np.array([ref_ulaw_compress(int(x)) for x in ALL_INT16], dtype=np.uint8)
    assert np.array_equal(got, expected)


def test_alaw_encoding_matches_the_standard_on_all_65536_inputs() -> None:
    got = np.frombuffer(alaw_encode(ALL_INT16), dtype=np.uint8)
    expected = np.array([ref_alaw_compress(int(x)) for x in ALL_INT16], dtype=np.uint8)
    assert np.array_equal(got, expected)


def test_ulaw_decoding_matches_the_standard_on_all_256_codes() -> None:
    assert ulaw_decode(ALL_CODES).tolist() == [ref_ulaw_expand(c) for c in range(256)]


def test_alaw_decoding_matches_the_standard_on_all_256_codes() -> None:
    assert alaw_decode(ALL_CODES).tolist() == [ref_alaw_expand(c) for c in range(256)]


@pytest.mark.parametrize(("codec", "decode"), [("pcm_mulaw", ulaw_decode),
                                               ("pcm_alaw", alaw_decode)])
def test_decoding_agrees_with_ffmpegs_decoders(codec: str, decode: object) -> None:
    """A second, independent opinion on the 256 reconstruction levels: FFmpeg's decoders."""
    ctx = av.CodecContext.create(codec, "r")
    ctx.sample_rate = 8000
    ctx.layout = "mono"
    frames = ctx.decode(av.Packet(ALL_CODES))
    ffmpeg = np.concatenate([f.to_ndarray().reshape(-1) for f in frames])
    assert np.array_equal(ffmpeg, decode(ALL_CODES))  # type: ignore[operator]


def test_silence_and_full_scale_encode_to_the_standard_g711_bytes() -> None:
    """Spot values every G.711 implementation agrees on: silence and full scale."""
    edges = np.array([0, -1, 32767, -32768], np.int16)
    assert ulaw_encode(edges) == bytes([0xFF, 0x7F, 0x80, 0x00])
    assert alaw_encode(edges) == bytes([0xD5, 0x55, 0xAA, 0x2A])
    assert ulaw_decode(bytes([0xFF, 0x80, 0x00])).tolist() == [0, 32124, -32124]
    assert alaw_decode(bytes([0xD5, 0xAA, 0x2A])).tolist() == [8, 32256, -32256]


def test_every_code_but_ulaw_negative_zero_survives_decode_then_encode() -> None:
    """Reconstruction levels re-encode to their own code; μ-law 0x7F ("-0") becomes 0xFF."""
    u = np.frombuffer(ulaw_encode(ulaw_decode(ALL_CODES)), np.uint8)
    a = np.frombuffer(alaw_encode(alaw_decode(ALL_CODES)), np.uint8)
    assert np.array_equal(a, np.arange(256))
    mismatched = np.flatnonzero(u != np.arange(256)).tolist()
    assert mismatched == [0x7F] and u[0x7F] == 0xFF


def _error_bound(x: np.ndarray) -> np.ndarray:
    """Half a quantisation step (~|x|/32 in every segment), plus the clipping above the top
    level (32124 μ-law, 32256 A-law) which this bound also covers."""
    return np.abs(x.astype(np.int64)) / 32 + 9


def test_round_trip_error_is_within_half_a_step_on_every_input() -> None:
    for enc, dec in ((ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)):
        err = np.abs(dec(enc(ALL_INT16)).astype(np.int64) - ALL_INT16)
        assert np.all(err <= _error_bound(ALL_INT16))


@settings(max_examples=100, deadline=None)
@given(arrays(np.int16, st.integers(1, 500)), st.sampled_from(["ulaw", "alaw"]))
def test_round_trip_error_bound_holds_for_any_signal(samples: np.ndarray, law: str) -> None:
    enc, dec = (ulaw_encode, ulaw_decode) if law == "ulaw" else (alaw_encode, alaw_decode)
    coded = enc(samples)
    assert len(coded) == len(samples)
    err = np.abs(dec(coded).astype(np.int64) - samples)
    assert np.all(err <= _error_bound(samples))


def test_encoders_refuse_non_int16_input() -> None:
    with pytest.raises(TypeError, match="int16"):
        ulaw_encode(np.zeros(4, dtype=np.float32))
