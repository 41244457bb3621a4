"""TLS for the local server: a loopback certificate you can trust, and the server's SSL context.

Some official clients only dial ``wss://`` (the Node SDK's ``OpenAIRealtimeWS`` rewrites any base
URL to ``wss``), so the local server can serve TLS:

* your own certificate: ``python -m realtime_nb.server --ssl-certfile cert.pem --ssl-keyfile
  key.pem`` (uvicorn's option names), or ``LocalServer(ssl_certfile=..., ssl_keyfile=...)``;
* a self-signed loopback certificate: ``--self-signed`` (or :func:`self_signed_cert`) writes one
  under ``~/.cache/realtime_nb/tls/`` (``$XDG_CACHE_HOME`` is honoured) once and reuses it. It is
  valid for ``localhost``, ``127.0.0.1`` and ``::1`` only, and it is its own CA: make a client
  trust it by pointing it at the certificate file —
  ``NODE_EXTRA_CA_CERTS=<cert.pem>`` for Node, ``SSL_CERT_FILE=<cert.pem>`` for Python's ``ssl``
  and httpx, or ``ssl.create_default_context(cafile=<cert.pem>)``.

The private key is written with mode 0600. Nothing here weakens verification on the client side:
clients must trust the certificate, never skip the check.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
import ssl
from pathlib import Path

__all__ = ["default_cert_folder", "self_signed_cert", "server_ssl_context"]

_CERT = "localhost-cert.pem"
_KEY = "localhost-key.pem"
#: Renew a cached certificate this long before it expires.
_RENEW_BEFORE = _dt.timedelta(days=7)


def default_cert_folder() -> Path:
    """``$XDG_CACHE_HOME/realtime_nb/tls`` (``~/.cache/realtime_nb/tls`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "realtime_nb" / "tls"


def self_signed_cert(folder: str | os.PathLike[str] | None = None, *,
                     days: int = 365) -> tuple[Path, Path]:
    """Return ``(certfile, keyfile)`` of a self-signed loopback certificate in ``folder``
    (default :func:`default_cert_folder`), creating it if it is missing, unreadable or within a
    week of expiry.

    The certificate names ``localhost``, ``127.0.0.1`` and ``::1`` and is a CA for itself, so a
    client that is given the certificate file as a trusted CA verifies it normally.
    """
    from cryptography import x509

    where = Path(folder) if folder is not None else default_cert_folder()
    cert_path, key_path = where / _CERT, where / _KEY
    if cert_path.exists() and key_path.exists():
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            if cert.not_valid_after_utc - _RENEW_BEFORE > _dt.datetime.now(_dt.UTC):
                return cert_path, key_path
        except ValueError:
            pass  # damaged: make a new one
    cert_pem, key_pem = _make_cert(days)
    where.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_pem)
    os.chmod(key_path, 0o600)
    cert_path.write_bytes(cert_pem)
    return cert_path, key_path


def _make_cert(days: int) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "realtime_nb local server"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "realtime_nb (loopback)")])
    now = _dt.datetime.now(_dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def server_ssl_context(certfile: str | os.PathLike[str],
                       keyfile: str | os.PathLike[str] | None = None) -> ssl.SSLContext:
    """A server-side context (TLS 1.2+) loaded with ``certfile`` / ``keyfile``; raises
    ``ValueError`` naming the file when either cannot be loaded."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(os.fspath(certfile), os.fspath(keyfile) if keyfile else None)
    except (OSError, ssl.SSLError) as err:
        raise ValueError(f"Could not load the TLS certificate {os.fspath(certfile)!r} / key "
                         f"{keyfile!r}: {err}") from None
    return ctx
