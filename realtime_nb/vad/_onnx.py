"""What the speech models share: a model file verified by its SHA-256 inside an installed
package, and one onnxruntime session per file per process (``run`` is thread-safe)."""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["shared_session", "verified_file"]


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """Hash of a file, cached per (path, size, mtime) so constructing a model stays cheap."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def verified_file(candidates: Iterable[Path], sha256: str) -> tuple[Path | None, list[str]]:
    """The first existing candidate whose SHA-256 is ``sha256``, and what was wrong with the
    others (for the caller's error message)."""
    problems: list[str] = []
    for candidate in candidates:
        if not candidate.is_file():
            continue
        stat = candidate.stat()
        digest = _sha256(str(candidate), stat.st_size, stat.st_mtime_ns)
        if digest == sha256:
            return candidate, problems
        problems.append(f"{candidate} has SHA-256 {digest}, expected {sha256}")
    return None, problems


_sessions: dict[str, Any] = {}
_sessions_lock = threading.Lock()


def shared_session(path: Path, unavailable: type[Exception], message: str) -> Any:
    """The process's onnxruntime session for ``path``: one thread, CPU, quiet logging (the
    upstream files have unused initializers). Raises ``unavailable(message)`` without
    onnxruntime."""
    key = str(path)
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None:
            try:
                import onnxruntime as ort
            except ImportError as exc:  # pragma: no cover - onnxruntime is a hard dependency
                raise unavailable(message) from exc
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.log_severity_level = 3
            session = ort.InferenceSession(key, sess_options=options,
                                           providers=["CPUExecutionProvider"])
            _sessions[key] = session
        return session
