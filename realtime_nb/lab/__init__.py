"""realtime_nb.lab: the VAD lab — compare turn-detection settings on the same speech.

Record once (or load a file), replay exactly that audio under a grid of settings, and see what
each setting does: turn times, clipped onsets, premature cut-offs, latency from speech end to
commit; then take the recommended setting into a live session. And when a session's input
buffer is mysteriously empty, :func:`explain` says why from its event log.

::

    from realtime_nb import lab

    result = lab.sweep("me.wav", grid={"threshold": [0.3, 0.5, 0.7],
                                       "silence_duration_ms": [200, 500, 800]})
    result.to_dataframe()                 # one row per setting (pandas), or result.to_records()
    result.plot()                         # each setting's turns over the waveform
    result.heatmap("silence_duration_ms", "threshold", "premature_cutoffs")
    best = result.recommend()             # .settings, .reason (in words)
    await lab.apply(session, best)        # session.update with that turn detection

    lab.sweep(audio, backend="local")     # the same through real sockets (identical turns)
    lab.sweep(audio, backend="openai")    # against the service, paced at real time

    corpus = lab.sweep_corpus("calls/", grid, labels="audacity")  # a folder: per setting, per file
    corpus.recommend(); corpus.heatmap(...); corpus.per_file_dataframe()

    lab.explain(session)                  # or a JSONL trace, or a list of events
    # -> [Cause(code="vad_auto_commit", message=..., evidence=[(t, type, detail), ...])]

Offline sweeps compute the speech probabilities once per recording and re-run only the
segmentation per setting (the very code the local server runs live), so a grid of hundreds of
settings takes well under a second; ``executor=`` spreads larger sweeps over processes or
machines (any ``concurrent.futures.Executor``, e.g. Dask's ``client.get_executor()``).
"""

from ._capture import Recorder, recording_from
from ._corpus import Corpus, CorpusResult, FileSweep, read_audacity_labels, sweep_corpus
from ._explain import CAUSE_CODES, Cause, Causes, Evidence, explain
from ._plot import heatmap, plot_sweep
from ._recommend import Recommendation, apply, recommend
from ._records import METRICS, SettingResult, SweepResult, Turn
from ._reference import Reference, auto_reference, measure, reference_from_clean
from ._settings import DEFAULT_GRID, expand_grid, settings_label, turn_detection_wire
from ._sweep import BACKENDS, asweep, replay_audio, sweep

__all__ = [
    "BACKENDS",
    "CAUSE_CODES",
    "DEFAULT_GRID",
    "METRICS",
    "Cause",
    "Causes",
    "Corpus",
    "CorpusResult",
    "Evidence",
    "FileSweep",
    "Recommendation",
    "Recorder",
    "Reference",
    "SettingResult",
    "SweepResult",
    "Turn",
    "apply",
    "asweep",
    "auto_reference",
    "expand_grid",
    "explain",
    "heatmap",
    "measure",
    "plot_sweep",
    "read_audacity_labels",
    "recommend",
    "recording_from",
    "reference_from_clean",
    "replay_audio",
    "settings_label",
    "sweep",
    "sweep_corpus",
    "turn_detection_wire",
]
