"""realtime_nb.audio's public surface: the names it exports and their call signatures.

Pinned so that moving code between the package's private modules (``_decode`` was split into
``_sniff``, ``_container``, ``_parallel``, ``_samples``, ``_arrays`` and ``_raw``) cannot
change what a caller imports or how it calls it. ``CapturedPCM16`` joined the list when it
moved here from the private ``client._pcm`` (an audio type the widgets make).
"""

from __future__ import annotations

import inspect

import realtime_nb.audio as audio

PUBLIC_NAMES = [
    "COMMIT_MIN_MS", "MAX_CHUNK_MS", "MIN_CHUNK_MS", "PCM", "PCMA", "PCMU", "Audio",
    "AudioBuffer", "AudioChunk", "AudioError", "CapturedPCM16", "Finding", "Source",
    "StreamResampler",
    "alaw_decode", "alaw_encode", "append_events", "bytes_per_ms", "bytes_per_sample", "chunks",
    "convert", "dbfs", "decode", "decode_format", "decode_raw", "diagnose", "encode",
    "format_rate", "from_array", "looks_like_float32", "normalize_format", "sniff_container",
    "to_pcm16", "ulaw_decode", "ulaw_encode",
]

SIGNATURES = {
    "decode": "(source: 'Source', sample_rate: 'int | None' = None, *, raw: 'Any' = None, "
              "channels: 'int | None' = None, to_rate: 'int | None' = None, "
              "container: 'str | None' = None) -> 'Audio'",
    "decode_raw": "(data: 'bytes | bytearray | memoryview', sample_rate: 'int | None', "
                  "dtype: 'Any' = 'int16', channels: 'int' = 1, *, "
                  "to_rate: 'int | None' = None) -> 'Audio'",
    "from_array": "(samples: 'np.ndarray', sample_rate: 'int | None', *, "
                  "to_rate: 'int | None' = None) -> 'Audio'",
    "sniff_container": "(head: 'bytes') -> 'tuple[str, str | None] | None'",
    "convert": "(source: 'Source', sample_rate: 'int | None' = None, "
               "format: 'FormatLike' = 'audio/pcm', *, raw: 'Any' = None, "
               "channels: 'int | None' = None) -> 'bytes'",
    "to_pcm16": "(source: 'Source', sample_rate: 'int | None' = None, *, raw: 'Any' = None, "
                "channels: 'int | None' = None) -> 'bytes'",
    "diagnose": "(pcm16: 'bytes | bytearray | memoryview | Audio', "
                "sample_rate: 'int' = 24000) -> 'list[Finding]'",
}


def test_the_package_exports_exactly_its_documented_names() -> None:
    assert sorted(audio.__all__) == sorted(PUBLIC_NAMES)
    assert all(hasattr(audio, name) for name in PUBLIC_NAMES)


def test_the_decoding_functions_keep_their_call_signatures() -> None:
    for name, signature in SIGNATURES.items():
        assert str(inspect.signature(getattr(audio, name))) == signature, name


def test_source_still_names_every_accepted_kind_of_input() -> None:
    names = {getattr(t, "__name__", str(t)) for t in audio.Source.__args__}
    assert {"Audio", "ndarray", "str", "bytes", "bytearray", "memoryview"} <= names
