"""PEP 3333's environ: what a request looks like to a WSGI application, with its
input stream (a body read as it arrives), error stream and file wrapper."""

from __future__ import annotations

import functools
import io
import logging
import threading
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional
from urllib.parse import unquote, urlsplit

from ..connection import Address, Connection
from ..messages import HttpMessage
from .config import BODY_PAUSE_OVER, BODY_RESUME_UNDER
from .proxy import ProxyTrust

logger = logging.getLogger("pymongoose.wsgi")


class BodyStream:
    """``wsgi.input`` for a body that is still arriving: the loop thread feeds it,
    the application's thread reads it (blocking until bytes or the end come)."""

    def __init__(self, length: int, resume: Callable[[], None]) -> None:
        self.remaining = length       # bytes the loop has yet to feed
        self._buffer = bytearray()
        self._done = False            # all fed, or the client left
        self._abandoned = False       # the application has finished: drop the rest
        self._paused = False          # the loop stopped reading this connection
        self._resume = resume         # asks the loop to read again
        self._ready = threading.Condition()

    # -- the loop thread

    def feed(self, data: bytes) -> bool:
        """Add what arrived; True if reading should pause (too much unread)."""
        with self._ready:
            self.remaining -= len(data)
            if self._abandoned:
                return False
            self._buffer += data
            self._done = self._done or self.remaining <= 0
            self._ready.notify_all()
            self._paused = len(self._buffer) > BODY_PAUSE_OVER and not self._done
            return self._paused

    def abort(self) -> None:
        with self._ready:
            self._done = True
            self._ready.notify_all()

    # -- the application's thread, once it has finished

    def abandon(self) -> None:
        """What the application did not read is dropped as it arrives (the client
        may still be sending it: the connection must read on to reach the next
        request)."""
        with self._ready:
            self._abandoned = True
            self._buffer.clear()
            if self._paused:
                self._paused = False
                self._resume()

    # -- the application's thread (PEP 3333's input stream)

    def _take(self, size: int, until_newline: bool = False) -> bytes:
        with self._ready:
            while True:
                end = len(self._buffer) if size < 0 else min(size, len(self._buffer))
                if until_newline:
                    newline = self._buffer.find(b"\n", 0, end if size >= 0 else len(self._buffer))
                    if newline >= 0:
                        end = newline + 1
                    elif not self._done and (size < 0 or len(self._buffer) < size):
                        self._ready.wait()
                        continue
                elif not self._done and (size < 0 or len(self._buffer) < size):
                    self._ready.wait()
                    continue
                data = bytes(self._buffer[:end])
                del self._buffer[:end]
                if self._paused and len(self._buffer) < BODY_RESUME_UNDER:
                    self._paused = False
                    self._resume()
                return data

    def read(self, size: Optional[int] = -1) -> bytes:
        return self._take(-1 if size is None else size)

    def readline(self, size: Optional[int] = -1) -> bytes:
        return self._take(-1 if size is None else size, until_newline=True)

    def readlines(self, hint: int = -1) -> List[bytes]:
        lines: List[bytes] = []
        total = 0
        while hint < 0 or total < hint:
            line = self.readline()
            if not line:
                break
            lines.append(line)
            total += len(line)
        return lines

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")


class FileWrapper:
    """``environ["wsgi.file_wrapper"]`` (PEP 3333). A regular file is sent in
    ``blksize`` blocks read by C straight into the send buffer; anything else with
    a ``read()`` is iterated.

    >>> import io
    >>> list(FileWrapper(io.BytesIO(b"abc"), blksize=2))
    [b'ab', b'c']
    """

    def __init__(self, filelike: Any, blksize: int = 256 * 1024) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> "FileWrapper":
        return self

    def __next__(self) -> bytes:
        data = self.filelike.read(self.blksize)
        if not data:
            raise StopIteration
        return data if isinstance(data, bytes) else bytes(data, "latin-1")

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


class _ErrorStream:
    """``environ["wsgi.errors"]``: what the application writes goes to the log."""

    def write(self, text: str) -> None:
        if text.strip():
            logger.error("%s", text.rstrip())

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass


ERRORS = _ErrorStream()
_UNIX_SERVER = {"http": Address("localhost", 80), "https": Address("localhost", 443)}


@functools.lru_cache(maxsize=256)
def _host_name(host: str) -> Optional[str]:
    """The name in a Host header, for SERVER_NAME (PEP 3333); None if Python's URL
    parser refuses it (the C side has refused what RFC 9112 calls invalid, but
    Python's rules may differ). Cached: a server sees few names (bounded: the
    header is the client's), and ``urlsplit`` is a fifth of the environ's cost.

    >>> _host_name("example.com:8080"), _host_name("[::1]:80"), _host_name("[")
    ('example.com', '::1', None)
    """
    try:
        return urlsplit("//" + host).hostname
    except ValueError:
        return None


def build_environ(conn: Connection, message: HttpMessage, stream: Optional[BodyStream], multithread: bool,
                  multiprocess: bool, proxy: Optional[ProxyTrust] = None, root_path: str = "") -> Dict[str, Any]:
    """PEP 3333's environ for a request (``stream``: its body, still arriving; None:
    the message holds it whole; ``proxy``: whose proxy headers to believe;
    ``root_path``: ``SCRIPT_NAME``, taken off the front of ``PATH_INFO`` when there)."""
    local, remote = conn.local_addr, conn.remote_addr
    scheme = "https" if conn.is_tls else "http"
    if local is None or not local.port:  # a Unix domain socket: no addresses (PEP 3333 wants a server)
        local, remote = _UNIX_SERVER[scheme], None
    body = b"" if stream is not None else message.body_bytes
    method, uri, query, proto, headers = message.fields()
    environ: Dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        # PEP 3333: bytes decoded as latin-1, so that the application can recover them.
        "PATH_INFO": unquote(uri, encoding="latin-1"),
        "RAW_URI": uri + ("?" + query if query else ""),
        "QUERY_STRING": query,
        "SERVER_NAME": local.ip if local is not None else "",
        "SERVER_PORT": str(local.port) if local is not None else "",
        "SERVER_PROTOCOL": proto or "HTTP/1.1",
        "REMOTE_ADDR": remote.ip if remote is not None else "",
        "REMOTE_PORT": str(remote.port) if remote is not None else "",
        "CONTENT_LENGTH": str(stream.remaining) if stream is not None else str(len(body)) if body else "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": stream if stream is not None else io.BytesIO(body),
        "wsgi.input_terminated": True,
        "wsgi.errors": ERRORS,
        "wsgi.multithread": multithread,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
    }
    for name, value in headers:
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value
            continue
        if key == "CONTENT_LENGTH":
            continue  # the body's own length, set above
        key = "HTTP_" + key
        environ[key] = environ[key] + "," + value if key in environ else value
    if "HTTP_HOST" in environ:
        environ["SERVER_NAME"] = _host_name(environ["HTTP_HOST"]) or environ["SERVER_NAME"]
    if root_path:
        environ["SCRIPT_NAME"] = root_path
        path = environ["PATH_INFO"]
        if path == root_path or path.startswith(root_path + "/"):
            environ["PATH_INFO"] = path[len(root_path):]
    if proxy is not None:
        client, secure = proxy.resolve((remote.ip, remote.port) if remote is not None else None,
                                       environ.get("HTTP_FORWARDED"), environ.get("HTTP_X_FORWARDED_FOR"),
                                       environ.get("HTTP_X_FORWARDED_PROTO"))
        if client is not None:
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = client[0], str(client[1])
        if secure is not None:
            environ["wsgi.url_scheme"] = "https" if secure else "http"
    return environ
