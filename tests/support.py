"""Helpers for the tests: a manager polled by a background thread, condition waits,
raw sockets and subprocesses.

Tests talk to real peers (requests, raw sockets...) on loopback, on ports the OS
chooses. They wait on conditions, never on fixed sleeps.
"""

from __future__ import annotations

import collections
import itertools
import os
import queue
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, List, Tuple

import pymongoose
from pymongoose import Manager

REPO = Path(__file__).resolve().parent.parent
# Under emulation (.ci/aarch64) everything takes several times longer: the
# waits stretch by PYMONGOOSE_TEST_TIME_SCALE.
DEFAULT_TIMEOUT = 10.0 * float(os.environ.get("PYMONGOOSE_TEST_TIME_SCALE", "1"))


def wait_for(condition: Callable[[], Any], timeout: float = DEFAULT_TIMEOUT, what: str = "condition") -> Any:
    """Return condition()'s first truthy value; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def quietly(call: Callable[..., Any], *args: Any) -> Any:
    """``call(*args)``, or None when it raises OSError or returns something empty:
    for wait_for, while a server is starting."""
    try:
        return call(*args) or None
    except OSError:
        return None


def poll_until(manager: Manager, condition: Callable[[], Any], timeout: float = DEFAULT_TIMEOUT,
               what: str = "condition") -> Any:
    """Poll ``manager`` on this thread until condition() is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        manager.poll(10)


class LoopThread:
    """Polls a manager on a background thread until stopped, counting the polls."""

    def __init__(self, manager: Manager, poll_ms: int = 20) -> None:
        self.manager = manager
        self.poll_ms = poll_ms
        self.polls = 0
        self.errors: List[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pymongoose-test-loop", daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.manager.poll(self.poll_ms)
                self.polls += 1
        except BaseException as exc:  # surfaced by stop()
            self.errors.append(exc)

    def start(self) -> "LoopThread":
        self._thread.start()
        return self

    def call(self, function: Callable[..., Any], *args: Any, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Run function(*args) on the loop thread and return its result."""
        results: "queue.Queue[Tuple[bool, Any]]" = queue.Queue()

        def run() -> None:
            try:
                results.put((True, function(*args)))
            except BaseException as exc:
                results.put((False, exc))

        self.manager.call_soon_threadsafe(run)
        ok, value = results.get(timeout=timeout)
        if not ok:
            raise value
        return value

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            try:  # end a long poll at once
                self.manager.call_soon_threadsafe(lambda: None)
            except pymongoose.ManagerClosedError:
                pass
        self._thread.join(timeout=DEFAULT_TIMEOUT)
        assert not self._thread.is_alive(), "poll thread did not stop"
        if self.errors:
            raise self.errors[0]

    def stop_after_close(self) -> None:
        """Stop a loop whose manager another thread closed: it either saw the stop
        flag first or polled again and was refused (ManagerClosedError)."""
        try:
            self.stop()
        except pymongoose.ManagerClosedError:
            pass


class Server:
    """A manager with one listener, polled in the background."""

    def __init__(self, manager: Manager, listener: pymongoose.Connection, loop: LoopThread) -> None:
        self.manager = manager
        self.listener = listener
        self.loop = loop
        self.port: int = listener.local_addr.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    """A TCP port that was free a moment ago (for tests that need one in advance)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raw_request(port: int, data: bytes, host: str = "127.0.0.1", timeout: float = DEFAULT_TIMEOUT,
                read_until_close: bool = True) -> bytes:
    """Send raw bytes, return everything received until the peer closes (or timeout).

    A reset, or a pipe broken while sending, ends the conversation like a close:
    that is how a server drops a client it still has unread bytes from."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect((host, port))
        chunks = []
        try:
            s.sendall(data)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if not read_until_close:
                    break
        except (socket.timeout, ConnectionResetError, BrokenPipeError):
            pass
        return b"".join(chunks)


def run_python(*args: str, cwd: "Path | str | None" = None, **kwargs: Any) -> "subprocess.Popen[str]":
    """Start ``python args...`` with this interpreter; output is merged into stdout.

    It runs outside the source tree by default, so that ``-c`` and ``-m`` import the
    installed package, not the repository's ``pymongoose/`` folder."""
    import tempfile

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    kwargs["cwd"] = str(cwd) if cwd is not None else tempfile.gettempdir()
    # A session of its own: Program can kill what it started (workers too) at the end.
    return subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True, **kwargs)


def socket_activated(port: int, command: List[str], cwd: Path) -> "subprocess.Popen[str]":
    """Run ``command`` in ``cwd`` under ``systemd-socket-activate``, listening on
    127.0.0.1:``port``: it starts on the first connection, with the socket as fd 3.

    That tool passes on no environment but what it is told: here the import path
    (with ``cwd`` on it, for the app) and what a sanitizer build needs to load
    (LD_PRELOAD and the sanitizers' options), so the child imports what we test."""
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(cwd)) if p)
    passed = {"PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
    passed.update((name, value) for name, value in os.environ.items()
                  if name in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS") or name.startswith("PYMONGOOSE_"))
    return subprocess.Popen(["systemd-socket-activate", "-l", f"127.0.0.1:{port}",
                             *(f"--setenv={name}={value}" for name, value in passed.items()), *command],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


class Program:
    """A pymongoose program run as a subprocess, announcing its port on stdout."""

    def __init__(self, *args: str, cwd: "Path | str | None" = None, **popen: Any) -> None:
        self.process = run_python(*args, cwd=cwd, **popen)
        self.first_line = self._read_line()
        import re

        match = re.search(r"(\w+)://[\w.\[\]:]+?:(\d+)", self.first_line)
        if match is None:
            self.stop()
            raise AssertionError(f"program did not announce a port: {self.first_line!r}")
        self.port = int(match[2])
        self.url = f"http://127.0.0.1:{self.port}"

    def _read_line(self) -> str:
        assert self.process.stdout is not None
        result: List[str] = []
        reader = threading.Thread(target=lambda: result.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(DEFAULT_TIMEOUT * 3)
        if not result:
            self.process.kill()
            raise AssertionError("program printed nothing")
        return result[0]

    def stop(self, signum: int = 2) -> Tuple[int, str]:
        """Interrupt it (SIGINT: as Ctrl-C would); return (exit status, remaining output)."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            out, _ = self.process.communicate(timeout=DEFAULT_TIMEOUT * 2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
            raise AssertionError(f"program ignored the signal; output: {out}") from None
        return self.process.returncode, out

    def __enter__(self) -> "Program":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:  # the program and any worker process it started
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.communicate()


class Workers:
    """``python -m pymongoose ARGS --listen http://127.0.0.1:PORT --workers 2``: a
    supervisor and its two worker processes, run in ``cwd`` (beside the app)."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(cwd)) if p))
        self.process = subprocess.Popen([sys.executable, "-m", "pymongoose", *args, "--listen", self.url,
                                         "--workers", "2"], cwd=cwd, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)

    def bodies_from_each(self, count: int = 2) -> "set[bytes]":
        """What ``GET /`` answers, on new connections until ``count`` different
        answers came (the app answers its process id) or the time is up."""
        bodies: "set[bytes]" = set()
        deadline = time.monotonic() + DEFAULT_TIMEOUT * 2
        while len(bodies) < count and time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=DEFAULT_TIMEOUT) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    bodies.add(read_until_closed(s).rsplit(b"\r\n\r\n", 1)[1])
            except ConnectionRefusedError:
                time.sleep(0.05)  # the workers are still starting
        return bodies

    def sigterm_during(self, path: str) -> Tuple[Any, int]:
        """SIGTERM while ``GET path`` is in flight: (its response, the exit status)."""
        import requests

        responses: List[Any] = []
        thread = threading.Thread(target=lambda: responses.append(
            requests.get(self.url + path, timeout=DEFAULT_TIMEOUT * 2)))
        thread.start()
        time.sleep(0.3)  # the request is in flight
        self.process.send_signal(signal.SIGTERM)
        thread.join()
        return (responses[0] if responses else None), self.process.wait(DEFAULT_TIMEOUT * 2)

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Mosquitto:
    """A real mosquitto broker on a free loopback port, with a temporary config.

    ``users`` turns on authentication with those user names and passwords; ``tls``
    (cafile, certfile, keyfile) makes the listener TLS-only."""

    def __init__(self, workdir: Path, users: "dict[str, str] | None" = None,
                 tls: "tuple[Path, Path, Path] | None" = None) -> None:
        import shutil

        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            import pytest

            pytest.skip("mosquitto is not installed (Debian package 'mosquitto'; .ci/run installs it)")
        self.port = free_port()
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "log_dest stderr",
                 f"allow_anonymous {'false' if users else 'true'}"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # Started as root it would switch to user "mosquitto", who cannot read
            # the test's private temporary files.
            lines.append("user root")
        if users:
            password_file = workdir / "passwords"
            password_file.touch()
            for user, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(password_file), user, password], check=True)
            lines.append(f"password_file {password_file}")
        if tls:
            cafile, certfile, keyfile = tls
            lines += [f"cafile {cafile}", f"certfile {certfile}", f"keyfile {keyfile}"]
        config = workdir / f"mosquitto-{self.port}.conf"
        config.write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        wait_for(self._accepting, what="mosquitto to accept connections")
        self.url = f"mqtt{'s' if tls else ''}://127.0.0.1:{self.port}"

    def _accepting(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"mosquitto exited: {self.process.communicate()[0]}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self) -> str:
        self.process.terminate()
        try:
            return self.process.communicate(timeout=DEFAULT_TIMEOUT)[0]
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.communicate()[0]


class TestPKI:
    """A certificate authority (EC P-256) made with the openssl tool, issuing
    server certificates for the tests: valid, expired, for another name, or from
    an authority nobody trusts."""

    __test__ = False  # not a test class, despite the name

    def __init__(self, workdir: Path, name: str = "pymongoose test CA", issuer: "TestPKI | None" = None) -> None:
        import shutil

        if shutil.which("openssl") is None:
            import pytest

            pytest.skip("the openssl tool is not installed (.ci/run installs it)")
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca_key = self.dir / "ca.key"
        self.ca_cert = self.dir / "ca.pem"
        self._run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", self.ca_key)
        if issuer is None:  # a root
            self._run("req", "-x509", "-new", "-key", self.ca_key, "-sha256", "-days", "30",
                      "-subj", f"/CN={name}", "-out", self.ca_cert)
        else:  # an intermediate authority, signed by issuer
            csr = self.dir / "ca.csr"
            self._run("req", "-new", "-key", self.ca_key, "-subj", f"/CN={name}", "-out", csr,
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign")
            issuer._run("ca", "-batch", "-config", issuer.dir / "ca.cnf", "-cert", issuer.ca_cert,
                        "-keyfile", issuer.ca_key, "-in", csr, "-out", self.ca_cert, "-days", "30")
        (self.dir / "index.txt").touch()
        (self.dir / "serial").write_text("1000\n")
        (self.dir / "ca.cnf").write_text(
            "[ca]\ndefault_ca = test\n[test]\n"
            f"database = {self.dir / 'index.txt'}\nnew_certs_dir = {self.dir}\nserial = {self.dir / 'serial'}\n"
            "default_md = sha256\npolicy = any\nunique_subject = no\ncopy_extensions = copy\n"
            "[any]\ncommonName = supplied\n")

    def _run(self, *args: "str | Path") -> None:
        result = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(map(str, args))} failed: {result.stderr}")

    def issue(self, name: str = "localhost", *, expired: bool = False, key_type: str = "ec") -> Tuple[Path, Path]:
        """Return (certificate, key) paths for a server (or client) called ``name``
        (also valid for 127.0.0.1 when the name is localhost). ``key_type``: "ec"
        (P-256), "rsa2048" or "rsa4096"."""
        stem = self.dir / f"{name}{'-expired' if expired else ''}-{key_type}"
        key, csr, cert = stem.with_suffix(".key"), stem.with_suffix(".csr"), stem.with_suffix(".pem")
        sans = f"DNS:{name}" + (",IP:127.0.0.1" if name == "localhost" else "")
        if key_type == "ec":
            self._run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key)
        else:
            self._run("genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{key_type[3:]}", "-out", key)
        self._run("req", "-new", "-key", key, "-subj", f"/CN={name}", "-addext", f"subjectAltName={sans}",
                  "-out", csr)
        dates = ["-startdate", "20200101000000Z", "-enddate", "20200201000000Z"] if expired else ["-days", "30"]
        self._run("ca", "-batch", "-config", self.dir / "ca.cnf", "-cert", self.ca_cert, "-keyfile", self.ca_key,
                  "-in", csr, "-out", cert, *dates)
        return cert, key


def _dns_name(packet: bytes, offset: int) -> Tuple[str, int]:
    labels = []
    while packet[offset]:
        size = packet[offset]
        labels.append(packet[offset + 1:offset + 1 + size].decode("ascii", "replace"))
        offset += 1 + size
    return ".".join(labels), offset + 1


class UdpResponder:
    """A UDP server on loopback, answering each datagram with ``reply(datagram)``
    (None: no answer) on a thread of its own until stopped."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.url = f"udp://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def reply(self, datagram: bytes) -> "bytes | None":
        raise NotImplementedError

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                datagram, peer = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            answer = self.reply(datagram)
            if answer is not None:
                self.sock.sendto(answer, peer)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(DEFAULT_TIMEOUT)
        self.sock.close()


class DnsResponder(UdpResponder):
    """A DNS server answering A queries from ``records`` (name -> IPv4), NXDOMAIN
    otherwise; it records every name asked."""

    def __init__(self, records: "dict[str, str]") -> None:
        self.records = records
        self.queries: List[Tuple[str, int]] = []
        super().__init__()

    def reply(self, packet: bytes) -> bytes:
        import struct

        name, offset = _dns_name(packet, 12)
        qtype = struct.unpack("!H", packet[offset:offset + 2])[0]
        self.queries.append((name, qtype))
        question = packet[12:offset + 4]
        ip = self.records.get(name)
        if ip is not None and qtype == 1:
            answer = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(ip)
            return packet[:2] + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0) + question + answer
        flags = 0x8180 | (3 if ip is None else 0)  # NXDOMAIN, or no record of that type
        return packet[:2] + struct.pack("!HHHHH", flags, 1, 0, 0, 0) + question


class SntpResponder(UdpResponder):
    """An SNTP server telling the host's time plus ``offset_ms``."""

    def __init__(self, offset_ms: int = 0) -> None:
        self.offset_ms = offset_ms
        self.requests = 0
        super().__init__()

    def reply(self, request: bytes) -> bytes:
        import struct

        # Requests queued together leave in one datagram (UDP: Mongoose sends its
        # whole send buffer at once): count each 48-byte request in it.
        self.requests += max(1, len(request) // 48)
        now = time.time() + self.offset_ms / 1000 + 2208988800  # NTP counts from 1900
        stamp = struct.pack("!II", int(now), int((now % 1) * 2**32))
        return bytes([0x24, 1, 0, 0]) + bytes(20) + request[40:48] + stamp + stamp


_topics = itertools.count()


def unique_topic(name: str) -> str:
    """An MQTT topic no other test uses (retained messages outlive tests)."""
    return f"pymongoose-test/{next(_topics)}/{name}"


def read_until_closed(s: socket.socket, timeout: float = DEFAULT_TIMEOUT) -> bytes:
    """Everything a peer sends on ``s`` (a plain or TLS socket) until it closes."""
    s.settimeout(timeout)
    received = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            return received
        received += chunk


# ---- raw WebSocket clients --------------------------------------------------------

# An upgrade request a raw socket sends (RFC 6455's sample key).
WS_UPGRADE = (b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def server_frames(data: bytes) -> List[Tuple[int, bytes]]:
    """(first byte, payload) of each frame in data; a masked (client) frame's
    payload unmasked."""
    frames = []
    while data:
        n, at = data[1] & 0x7F, 2
        if n == 126:
            n, at = struct.unpack("!H", data[2:4])[0], 4
        elif n == 127:
            n, at = struct.unpack("!Q", data[2:10])[0], 10
        payload = data[at:at + n]
        if data[1] & 0x80:
            mask, payload = data[at:at + 4], data[at + 4:at + 4 + n]
            payload, at = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)), at + 4
        frames.append((data[0], payload))
        data = data[at + n:]
    return frames


def ws_frame(opcode: int, payload: bytes, fin: bool = True, length: Any = None) -> bytes:
    """One masked client frame (RFC 6455 5.2); ``length`` may lie about the size."""
    mask = b"\x01\x02\x03\x04"
    size = len(payload) if length is None else length
    first = (0x80 if fin else 0) | opcode
    if size < 126:
        header = bytes([first, 0x80 | size])
    elif size < 65536:
        header = bytes([first, 0x80 | 126]) + struct.pack("!H", size)
    else:
        header = bytes([first, 0x80 | 127]) + struct.pack("!Q", size)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))



class SteadyLoad:
    """Clients sending ``GET /`` without pause on ``threads`` threads, each on a new
    connection (``keep_alive``: on one connection per thread, as long as the server
    keeps it, as browsers and proxies do), until stopped: what a server answered
    (bodies counted) and every failure (a refused or reset connection, a response
    that is not 200)."""

    def __init__(self, port: int, threads: int = 4, keep_alive: bool = False) -> None:
        self.port = port
        self.keep_alive = keep_alive
        self.bodies: "collections.Counter[str]" = collections.Counter()
        self.failures: List[str] = []
        self.last: List[str] = []  # the bodies of the latest 50 responses
        self._lock = threading.Lock()
        self._running = True
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=DEFAULT_TIMEOUT)
        while self._running:
            try:
                if self.keep_alive:
                    connection.request("GET", "/")
                    reply = connection.getresponse()
                    body = reply.read()
                    if reply.will_close:  # the server said so: a new connection for the next
                        connection.close()
                    outcome = body.decode() if reply.status == 200 else f"not 200: {reply.status}"
                else:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=DEFAULT_TIMEOUT) as s:
                        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        response = read_until_closed(s)
                    head, _, body = response.partition(b"\r\n\r\n")
                    outcome = body.decode() if head.startswith(b"HTTP/1.1 200 ") else f"not 200: {response[:60]!r}"
            except (OSError, http.client.HTTPException) as error:
                outcome = f"failed: {error!r}"
                connection.close()
            with self._lock:
                if outcome.startswith(("not 200", "failed")):
                    self.failures.append(outcome)
                else:
                    self.bodies[outcome] += 1
                    self.last = (self.last + [outcome])[-50:]

    def seen(self, condition: Callable[[str], bool]) -> bool:
        """Whether every one of the latest 50 responses meets ``condition``."""
        with self._lock:
            return len(self.last) == 50 and all(condition(body) for body in self.last)

    def stop(self) -> "collections.Counter[str]":
        self._running = False
        for thread in self._threads:
            thread.join(DEFAULT_TIMEOUT * 2)
        return self.bodies


# An ASGI application that echoes each WebSocket message as bytes (a module's text).
WS_ECHO_APP = '''
async def app(scope, receive, send):
    assert scope["type"] == "websocket"
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "bytes": message.get("bytes") or message["text"].encode()})
'''


def open_websocket(port: int) -> socket.socket:
    """A raw socket that has done the WebSocket handshake with a server on ``port``."""
    client = socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT)
    client.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += client.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return client


def refused(*args: str, cwd: "Path | str | None" = None) -> str:
    """``python -m pymongoose ARGS`` exits with status 2 at once (a usage error, or an
    application that cannot be loaded): what it printed."""
    process = run_python("-m", "pymongoose", *args, cwd=cwd)
    out, _ = process.communicate(timeout=DEFAULT_TIMEOUT)
    assert process.returncode == 2, out
    return out
