"""``python -m realtime_nb.server --host 127.0.0.1 --port PORT``: serve the local Realtime API.

TLS (``wss://``, which the Node SDK always dials): ``--ssl-certfile``/``--ssl-keyfile`` with your
own certificate, or ``--self-signed`` for a loopback certificate made once under
``~/.cache/realtime_nb/tls/``; the server prints the certificate's path for
``NODE_EXTRA_CA_CERTS`` / ``SSL_CERT_FILE``.

To require a key, put it in the ``REALTIME_NB_SERVER_KEY`` environment variable (preferred: a
``--api-key`` value is visible to every user of the machine in ``ps``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Mapping

from .app import LocalServer

#: The environment variable holding the key clients must present (see :func:`required_key`).
KEY_ENV = "REALTIME_NB_SERVER_KEY"


def required_key(cli_key: str | None, environ: Mapping[str, str]) -> str | None:
    """The key the server requires: ``--api-key`` if given, else ``$REALTIME_NB_SERVER_KEY``,
    else ``None`` (any key accepted). An empty key is refused with ``ValueError`` rather than
    silently serving without one."""
    if cli_key is not None:
        if not cli_key:
            raise ValueError("--api-key is empty")
        return cli_key
    env_key = environ.get(KEY_ENV)
    if env_key is not None and not env_key:
        raise ValueError(f"{KEY_ENV} is set but empty (unset it to accept any key)")
    return env_key


def engine_lines(server: LocalServer) -> list[str]:
    """The start-up banner's lines saying which engine runs each transcription model name
    (grouped by engine) and what happens to ``noise_reduction``."""
    by_engine: dict[str, list[str]] = {}
    for name, engine in server.transcription_engines.items():
        by_engine.setdefault(engine, []).append(name)
    lines = ["  transcription models -> local engines:"]
    lines += [f"    {', '.join(names)} -> {engine}" for engine, names in by_engine.items()]
    lines.append(f"  noise_reduction: {server.noise_reduction}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m realtime_nb.server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=None,
                        help="address to bind (default 127.0.0.1; giving one explicitly allows "
                             "non-loopback addresses)")
    parser.add_argument("--port", type=int, default=8765, help="port (0 = any free port)")
    parser.add_argument("--api-key", default=None,
                        help=f"require this key (HTTP 401 at the upgrade otherwise). Prefer the "
                             f"{KEY_ENV} environment variable: a command-line key is visible to "
                             "other users in ps. --api-key wins when both are given")
    parser.add_argument("--beta", choices=["translate", "retired"], default="translate",
                        help="serve the retired beta dialect by translation, or answer it as "
                             "today's service does (beta_api_shape_disabled, close 4000)")
    parser.add_argument("--max-duration", "--max-session-s", dest="max_duration", type=float,
                        default=3600.0,
                        help="session age limit in seconds (service: 3600): then session_expired "
                             "and close 1001. A few seconds (e.g. 3) tests Session(renew=...)")
    parser.add_argument("--light", action="store_true",
                        help="use the light engines (pocketsphinx instead of Whisper)")
    parser.add_argument("--ssl-certfile", default=None,
                        help="serve TLS (wss://, https://) with this PEM certificate (chain)")
    parser.add_argument("--ssl-keyfile", default=None,
                        help="the certificate's PEM private key (if not in --ssl-certfile)")
    parser.add_argument("--self-signed", action="store_true",
                        help="serve TLS with a self-signed loopback certificate (made once under "
                             "~/.cache/realtime_nb/tls/); trust it with NODE_EXTRA_CA_CERTS / "
                             "SSL_CERT_FILE set to the printed path")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    try:
        api_key = required_key(args.api_key, os.environ)
    except ValueError as err:
        parser.error(str(err))
    if args.self_signed and args.ssl_certfile:
        parser.error("--self-signed and --ssl-certfile exclude each other")
    if args.ssl_keyfile and not (args.ssl_certfile):
        parser.error("--ssl-keyfile needs --ssl-certfile")
    certfile, keyfile = args.ssl_certfile, args.ssl_keyfile
    if args.self_signed:
        from .tls import self_signed_cert

        certfile, keyfile = self_signed_cert()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)

    async def run() -> None:
        from .engines import Engines

        engines = Engines.light() if args.light else Engines.default()
        server = LocalServer(args.host or "127.0.0.1", args.port, engines=engines,
                             api_key=api_key, beta=args.beta,
                             max_duration_s=args.max_duration, allow_remote=args.host is not None,
                             ssl_certfile=certfile, ssl_keyfile=keyfile)
        await server.start()
        print(f"realtime_nb local server: {server.url}?model=gpt-realtime", flush=True)
        print(f"  openai SDK: AsyncOpenAI(api_key='local', websocket_base_url='{server.base_url}')",
              flush=True)
        if server.tls:
            print(f"  REST base URL (Node SDK baseURL): {server.http_base_url}", flush=True)
            if args.self_signed:
                print(f"  trust the certificate: NODE_EXTRA_CA_CERTS={certfile} (Node), "
                      f"SSL_CERT_FILE={certfile} (Python)", flush=True)
        for line in engine_lines(server):
            print(line, flush=True)
        from .webrtc import webrtc_available

        if webrtc_available():
            print(f"  WebRTC calls: POST {server.http_base_url}/realtime/calls "
                  f"(sideband: {server.url}?call_id=...)", flush=True)
        else:
            print("  WebRTC calls: off (pip install 'realtime_nb[webrtc]')", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
