"""realtime_nb.server's public surface: the names it exports and how they are called.

Pinned so that moving code between the server's modules (``app.py`` was split into
``admission``, ``connection``, ``jobs``, ``batching``, ``rest`` and ``thread``) cannot change
what a caller imports or how it calls it: the package's names, ``realtime_nb.server.app``'s
(``LocalServer``, ``ClientSecret``, the process-wide server), and ``LocalServer``'s
constructor, methods and properties.
"""

from __future__ import annotations

import inspect

import realtime_nb.server as server
from realtime_nb.server import app
from realtime_nb.server.admission import ClientSecret

PACKAGE_NAMES = ["LocalServer", "ensure_local_server", "make_segmenter", "stop_local_server"]

LOCAL_SERVER_SIGNATURE = (
    "(host: 'str' = '127.0.0.1', port: 'int' = 0, *, engines: 'Any' = None, "
    "api_key: 'str | None' = None, beta: 'str' = 'translate', max_duration_s: 'float' = 3600.0, "
    "allow_remote: 'bool' = False, workers: 'int' = 2, vad_batch_s: 'float' = 0.005, "
    "turn_batch: 'int' = 8, turn_workers: 'int' = 1, allowed_origins: 'tuple[str, ...]' = (), "
    "asr_workers: 'int' = 1, ssl_certfile: 'str | os.PathLike[str] | None' = None, "
    "ssl_keyfile: 'str | os.PathLike[str] | None' = None, "
    "ssl_context: 'ssl.SSLContext | None' = None, "
    "connection_hooks: 'ConnectionHooks | None' = None) -> 'None'")

METHODS = {
    "start": "(self, warm_up: 'bool' = True) -> 'LocalServer'",
    "stop": "(self) -> 'None'",
    "mint_client_secret": "(self, body: 'Any') -> 'ClientSecret'",
    "schedule_vad": "(self, conn: 'Connection') -> 'None'",
    "schedule_turn": "(self, conn: 'Connection', check: 'Any', audio: 'Any') -> 'None'",
}

PROPERTIES = {"turn_model", "semantic_vad", "noise_reduction", "transcription_engines", "tls",
              "url", "base_url", "http_base_url"}


def test_the_package_exports_exactly_its_documented_names() -> None:
    assert sorted(server.__all__) == sorted(PACKAGE_NAMES)
    assert server.LocalServer is app.LocalServer
    assert server.ensure_local_server is app.ensure_local_server
    assert server.stop_local_server is app.stop_local_server


def test_app_keeps_its_public_names_including_the_client_secret_type() -> None:
    assert sorted(app.__all__) == ["LocalServer", "ensure_local_server", "stop_local_server"]
    assert app.ClientSecret is ClientSecret


def test_local_server_keeps_its_constructor_methods_and_properties() -> None:
    assert str(inspect.signature(app.LocalServer)) == LOCAL_SERVER_SIGNATURE
    for name, signature in METHODS.items():
        assert str(inspect.signature(getattr(app.LocalServer, name))) == signature, name
    properties = {n for n, v in vars(app.LocalServer).items()
                  if isinstance(v, property) and not n.startswith("_")}
    assert properties == PROPERTIES


def test_the_process_wide_server_functions_keep_their_call_signatures() -> None:
    assert str(inspect.signature(app.ensure_local_server)) == "(**kwargs: 'Any') -> 'LocalServer'"
    assert str(inspect.signature(app.stop_local_server)) == "() -> 'None'"
