"""TLS through Mongoose (mbed TLS 3.6 by default; see TLS_BACKEND): :class:`TlsOpts` and
``Connection.tls_init``.

A server gives its certificate and key; a client gives the CA to verify the server
with, and the name to check::

    server_tls = TlsOpts(cert=open("server.pem").read(), key=open("server.key").read())
    mgr.listen("https://0.0.0.0:8443", handler, tls=server_tls)

    client_tls = TlsOpts(ca=open("ca.pem").read(), name="example.test")
    mgr.connect("https://example.test:8443", handler, tls=client_tls)

A client connecting to an ``https``/``wss``/``mqtts`` URL without ``tls=`` verifies
the server against the system's CA bundle and the URL's host name.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from ._binding import ffi, lib
from ._connection_base import ConnectionBase
from ._loop import on_loop
from ._text import to_bytes
from .errors import MongooseError
from .log import capture_errors

__all__ = ["TLS_BACKEND", "TlsError", "TlsOpts"]

PemInput = Union[str, bytes, "os.PathLike[str]", None]

#: The TLS library built in: ``"mbedtls"`` (mbed TLS 3.6: TLS 1.2 and 1.3, RSA and
#: ECDSA certificates) or ``"builtin"`` (Mongoose's own: TLS 1.3, ECDSA P-256 only),
#: chosen when the extension was built (``PYMONGOOSE_TLS``).
TLS_BACKEND: str = "mbedtls" if lib.pm_build_features() & lib.PM_HAS_TLS_MBED else "builtin"

# Where Debian, Ubuntu, Alpine, Fedora/RHEL and SUSE keep the system CA bundle.
_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
               "/etc/ssl/ca-bundle.pem", "/etc/ssl/cert.pem")


class TlsError(MongooseError, ValueError):
    """TLS options Mongoose cannot use (bad PEM, missing or unsupported key...),
    raised when they are used: by ``listen``/``connect`` with ``tls=``, or
    ``tls_init``."""


def _check_certificates(data: bytes, what: str) -> None:
    """Parse the certificate(s) in ``data`` (PEM or DER), as Mongoose only decodes
    them when a handshake needs them: garbage must fail now, with a clear error."""
    try:
        import ssl
    except ImportError:  # an interpreter built without ssl: Mongoose will judge
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        if b"-----BEGIN" in data:
            blocks = data.decode("ascii", "replace")
            if "CERTIFICATE-----" not in blocks:
                raise TlsError(f"{what} holds no PEM certificate")
            context.load_verify_locations(cadata=blocks)
        else:
            context.load_verify_locations(cadata=data)
    except (ssl.SSLError, ValueError) as error:
        raise TlsError(f"{what} is not a valid certificate: {error}") from None


def _material(value: PemInput, what: str) -> bytes:
    """PEM or DER given as str, bytes, or the path of a file holding it."""
    if value is None:
        return b""
    if isinstance(value, os.PathLike):
        with open(value, "rb") as f:
            return f.read()
    return to_bytes(value, what)


class TlsOpts:
    """TLS options: certificates and keys (PEM or DER, as str, bytes or a path).

    :param ca: CA certificate(s) to verify the peer with. A client without one does
        not verify the server (unless it uses the default, see the module docs); a
        server with one requires and verifies client certificates.
    :param cert: our certificate (servers; clients for mutual TLS).
    :param key: our private key (EC P-256, RSA or PKCS#8); may be in ``cert``'s PEM.
    :param name: the server name to send (SNI) and to check the certificate against.
    :param skip_verification: accept any certificate (development only).
    :param resume: clients: offer the session kept from an earlier connection to the
        same server (name, address and port), so the handshake can skip the
        certificate and its verification, and keep this connection's session for the
        next one. Each manager keeps the sessions of its clients (the last 32
        servers). False: a full handshake every time, nothing kept.
    :param alpn: application protocols (ALPN, RFC 7301), most preferred first, such
        as ``["h2", "http/1.1"]``: a client offers them, a server picks the first of
        its list that the client offers, and refuses a client that offers only
        others (``no_application_protocol``). What was agreed is
        ``Connection.alpn``. Needs mbed TLS (not ``PYMONGOOSE_TLS=builtin``).
    :param sni: servers: more certificates, by the host name a client asks for (SNI,
        compared without case): ``{"api.example.com": (cert, key), ...}``. A client
        asking for another name, or none, gets ``cert``/``key``; without those its
        handshake fails. ``Connection.server_name`` is the name asked for. Needs
        mbed TLS.

    Options are stored as given, as the Cython binding does; they are checked
    when first used, and what Mongoose cannot use raises :class:`TlsError` then:

    >>> opts = TlsOpts(ca="not a certificate")
    >>> mgr.connect("https://example.test", tls=opts)  # doctest: +SKIP
    Traceback (most recent call last):
    ...
    pymongoose.tls.TlsError: ca is not a valid certificate: ...
    """

    __slots__ = ("ca", "cert", "key", "name", "skip_verification", "resume", "alpn", "sni", "_checked")

    def __init__(self, ca: PemInput = None, cert: PemInput = None, key: PemInput = None,
                 name: Union[str, bytes, None] = None, skip_verification: bool = False, *,
                 resume: bool = True, alpn: Optional[Iterable[Union[str, bytes]]] = None,
                 sni: Optional[Mapping[str, Tuple[PemInput, PemInput]]] = None) -> None:
        self.ca = _material(ca, "ca")
        self.cert = _material(cert, "cert")
        self.key = _material(key, "key")
        self.name = b"" if name is None else to_bytes(name, "name")
        if b"\0" in self.name or len(self.name) > 250:
            raise TlsError("name must be a host name without NUL characters")
        self.skip_verification = bool(skip_verification)
        self.resume = bool(resume)
        self.alpn = _protocols(alpn)
        self.sni = _certificates_by_name(sni)
        if self.cert and not self.key and b"PRIVATE KEY-----" in self.cert:
            self.key = self.cert  # one PEM file holding both
        self._checked = False

    def _validate(self) -> None:
        """Raise TlsError, naming the field, for material Mongoose would choke on or
        misread: it only decodes certificates when a handshake needs them."""
        if self._checked:
            return
        for field in ("ca", "cert", "key"):
            data = getattr(self, field)
            if b"-----BEGIN" in data and b"-----END" not in data:
                raise TlsError(f"{field} is truncated PEM: it has a BEGIN line but no END line")
        if self.cert and not self.key:
            raise TlsError("cert was given without its private key (key=...)")
        if self.key and not self.cert:
            raise TlsError("key was given without its certificate (cert=...)")
        if self.cert:
            _check_certificates(self.cert, "cert")
        # The system bundle (default_client_tls) is trusted as it is: parsing its
        # hundreds of certificates again for every connection would cost milliseconds.
        if self.ca and self.ca is not _system_bundle_cache.get("pem"):
            _check_certificates(self.ca, "ca")
        self._checked = True

    def _to_c(self) -> Tuple[Any, List[Any]]:
        """A ``struct mg_tls_opts *`` and the buffers it points into (keep them)."""
        opts = ffi.new("struct mg_tls_opts *")
        keep = [opts]
        for field in ("ca", "cert", "key", "name"):
            data = getattr(self, field)
            if data:
                buffer = ffi.new("char[]", data)
                keep.append(buffer)
                setattr(opts, field, (buffer, len(data)))
        opts.skip_verification = self.skip_verification
        return opts, keep

    def _for_mongoose(self, mgr: Any, client: bool) -> Tuple[Any, List[Any]]:
        """These options as C gets them (see :func:`c_tls_opts`)."""
        self._validate()
        if self.alpn and TLS_BACKEND != "mbedtls":
            raise TlsError("ALPN needs mbed TLS; this build has Mongoose's built-in TLS")
        if self.sni and TLS_BACKEND != "mbedtls":
            raise TlsError("sni= needs mbed TLS; this build has Mongoose's built-in TLS")
        if self.sni and client:
            raise TlsError("sni= gives a server's certificates by name; a client sends name=")
        for host, (cert, key) in self.sni.items():  # each pair as a server's options
            try:
                TlsOpts(cert=cert, key=key)._for_mongoose(mgr, client=False)
            except TlsError as refused:
                raise TlsError(f"sni[{host!r}]: {refused}") from None
        opts, keep = self._to_c()
        error = ffi.new("char[]", 256)
        with capture_errors() as logged:
            ok = lib.pm_tls_check(mgr, opts, client, error, 256)
        if not ok:
            reason = ffi.string(error).decode("utf-8", "replace") or "; ".join(map(_explain, logged))
            raise TlsError(f"invalid TLS options: {reason or 'refused by the TLS library'}")
        return opts, keep

    def __repr__(self) -> str:
        parts = [f"{field}=<{len(getattr(self, field))} bytes>" for field in ("ca", "cert", "key")
                 if getattr(self, field)]
        if self.name:
            parts.append(f"name={self.name.decode('utf-8', 'replace')!r}")
        if self.skip_verification:
            parts.append("skip_verification=True")
        if not self.resume:
            parts.append("resume=False")
        if self.alpn:
            parts.append(f"alpn={[name.decode('ascii', 'replace') for name in self.alpn]!r}")
        if self.sni:
            parts.append(f"sni=<{', '.join(self.sni)}>")
        return f"TlsOpts({', '.join(parts)})"


_CODED_ERROR = re.compile(r"^(cert|key) err (0x[0-9a-f]+)$")
_HANDSHAKE_ERROR = re.compile(r"^TLS handshake: -(0x[0-9a-f]+)$")


def _library_words(code: int) -> str:
    text = ffi.new("char[]", 200)
    lib.pm_tls_strerror(code, text, 200)
    return str(ffi.string(text).decode("utf-8", "replace"))


def describe_tls_error(message: str) -> str:
    """An MG_EV_ERROR text with the TLS library's words added to a bare error code:
    "TLS handshake: -0x2700" becomes "TLS handshake: -0x2700 (X509 - Certificate
    verification failed, e.g. CRL, CA or signature check failed)"."""
    match = _HANDSHAKE_ERROR.match(message)
    words = _library_words(int(match[1], 16)) if match else ""
    return f"{message} ({words})" if words else message


def _explain(line: str) -> str:
    """Mongoose's "key err 0x3d00" as the TLS library words it."""
    match = _CODED_ERROR.match(line)
    if match is None:
        return line
    words = _library_words(int(match[2], 16))
    what = "certificate" if match[1] == "cert" else "private key"
    return f"bad {what}: {words}" if words else line


def _protocols(alpn: Optional[Iterable[Union[str, bytes]]]) -> Tuple[bytes, ...]:
    """ALPN protocol names as bytes, checked: 1 to 255 bytes each, no NUL."""
    if alpn is None:
        return ()
    if isinstance(alpn, (str, bytes)):
        raise TlsError("alpn must be a list of protocol names, such as ['h2', 'http/1.1']")
    names = tuple(to_bytes(name, "alpn") for name in alpn)
    if not names:
        raise TlsError("alpn must name at least one protocol (or be None)")
    for name in names:
        if not 0 < len(name) < 256 or b"\0" in name:
            raise TlsError(f"ALPN protocol names are 1 to 255 bytes without NUL, not {name!r}")
    return names


def _certificates_by_name(sni: Optional[Mapping[str, Tuple[PemInput, PemInput]]]) -> Dict[str, Tuple[bytes, bytes]]:
    """sni= checked: host names (lower case, ASCII) to (certificate, key) material."""
    if sni is None:
        return {}
    if not isinstance(sni, Mapping):
        raise TlsError("sni must map host names to (cert, key) pairs")
    checked: Dict[str, Tuple[bytes, bytes]] = {}
    for host, pair in sni.items():
        if not isinstance(host, str) or not host or len(host) > 253 or not host.isascii() or "\0" in host:
            raise TlsError(f"sni: {host!r} is not a host name (ASCII; IDNA-encode others)")
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise TlsError(f"sni: {host!r} must map to a (cert, key) pair")
        cert, key = _material(pair[0], f"sni[{host!r}] cert"), _material(pair[1], f"sni[{host!r}] key")
        if not cert or not key:
            raise TlsError(f"sni: {host!r} needs both a certificate and its key")
        checked[host.lower()] = (cert, key)
    return checked


def set_connection_tls(c: Any, opts: TlsOpts, client: bool) -> None:
    """What ``struct mg_tls_opts`` cannot carry, set on connection ``c`` once
    Mongoose has its options (listen, connect, tls_init): session resumption, ALPN
    and a server's certificates by name.

    :raises MemoryError: if C has no room for them."""
    if client:
        lib.pm_conn_tls_resume(c, opts.resume)
    if opts.alpn:
        packed = b"\0".join(opts.alpn)
        if not lib.pm_conn_tls_alpn(c, packed, len(packed)):  # checked by c_tls_opts before
            raise MemoryError("out of memory for the ALPN protocols")
    if not client:
        for host, (cert, key) in opts.sni.items():
            name = host.encode("ascii")
            if not lib.pm_conn_tls_sni(c, name, len(name), cert, len(cert), key, len(key)):
                raise MemoryError(f"out of memory for the certificate of {host}")  # parsed before


def c_tls_opts(opts: TlsOpts, mgr: Any, client: bool) -> Tuple[Any, List[Any]]:
    """A ``struct mg_tls_opts *`` for a client (``client``) or a server, and the
    buffers it points into (keep them while C reads it).

    :raises TlsError: now, naming the field, if Mongoose would refuse ``opts``."""
    return opts._for_mongoose(mgr, client)


_system_bundle_cache: Dict[str, bytes] = {}


def system_ca_bundle() -> Optional[bytes]:
    """The system's CA certificates (PEM), or None if none is found. Read once."""
    if "pem" not in _system_bundle_cache:
        for path in _CA_BUNDLES:
            try:
                with open(path, "rb") as f:
                    _system_bundle_cache["pem"] = f.read()
                break
            except OSError:
                continue
    return _system_bundle_cache.get("pem")


def default_client_tls(host: str) -> TlsOpts:
    """What a client uses for a TLS URL given no options: the system CAs and the host."""
    bundle = system_ca_bundle()
    if bundle is None:
        raise TlsError("no system CA bundle found to verify the server; pass tls=TlsOpts(ca=...)")
    return TlsOpts(ca=bundle, name=host)


class TlsMethods(ConnectionBase):
    """TLS methods of :class:`~pymongoose.Connection`."""

    __slots__ = ()

    @on_loop
    def tls_init(self, opts: TlsOpts) -> None:
        """Start TLS on this connection with ``opts``.

        On a listener, every connection it accepts from now on starts TLS. On a
        client that is still connecting, TLS starts once it is connected. Otherwise
        (in an ``MG_EV_ACCEPT`` or ``MG_EV_CONNECT`` handler), the handshake starts now.

        :raises TlsError: if Mongoose cannot use ``opts``.
        """
        if not isinstance(opts, TlsOpts):
            raise TypeError("opts must be a TlsOpts")
        c = self._c()
        if c is None:
            self._sent(False, "tls_init")
            return
        flags = lib.pm_conn_flags(c)
        is_client = bool(flags & lib.PM_IS_CLIENT)
        c_opts, _keep = c_tls_opts(opts, self._manager._ptr, is_client)
        if not lib.pm_conn_set_tls(c, c_opts):
            raise MemoryError("out of memory for TLS options")
        set_connection_tls(c, opts, is_client)
        if flags & lib.PM_IS_LISTENING or flags & (lib.PM_IS_RESOLVING | lib.PM_IS_CONNECTING):
            return
        with capture_errors() as errors:
            lib.pm_tls_start(c)
        if errors and lib.pm_conn_flags(c) & lib.PM_IS_CLOSING:
            raise TlsError(f"TLS could not start: {errors[-1]}")

    @property
    @on_loop
    def alpn(self) -> Optional[str]:
        """The application protocol this connection's TLS handshake agreed on
        (``TlsOpts(alpn=...)``), or None: none agreed, the handshake is not over, or
        no TLS.

        >>> conn.alpn  # in MG_EV_TLS_HS or later  # doctest: +SKIP
        'h2'
        """
        c = self._c()
        chosen = ffi.NULL if c is None else lib.pm_tls_alpn_chosen(c)
        return None if chosen == ffi.NULL else ffi.string(chosen).decode("ascii", "replace")

    @property
    @on_loop
    def server_name(self) -> Optional[str]:
        """On a TLS server connection, the host name the client asked for (SNI), or
        None (none asked, not yet, or the built-in TLS). See ``TlsOpts(sni=...)``."""
        c = self._c()
        name = ffi.NULL if c is None else lib.pm_tls_server_name(c)
        return None if name == ffi.NULL else ffi.string(name).decode("ascii", "replace")

    @on_loop
    def tls_free(self) -> None:
        """Release this connection's TLS state (Mongoose does it on close)."""
        self._call(lib.mg_tls_free)
