"""Helpers for the tests: a manager polled by a background thread, condition waits,
raw sockets and subprocesses.

Tests talk to real peers (requests, raw sockets...) on loopback, on ports the OS
chooses. They wait on conditions, never on fixed sleeps.
"""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, List, Tuple

import pymongoose
from pymongoose import Manager

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TIMEOUT = 10.0


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
    """Polls a manager on a background thread until stopped."""

    def __init__(self, manager: Manager, poll_ms: int = 20) -> None:
        self.manager = manager
        self.poll_ms = poll_ms
        self.errors: List[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pymongoose-test-loop", daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.manager.poll(self.poll_ms)
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
        self._thread.join(timeout=DEFAULT_TIMEOUT)
        assert not self._thread.is_alive(), "poll thread did not stop"
        if self.errors:
            raise self.errors[0]


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
    """Send raw bytes, return everything received until the peer closes (or timeout)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect((host, port))
        s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if not read_until_close:
                break
        return b"".join(chunks)


def run_python(*args: str, cwd: "Path | str | None" = None, **kwargs: Any) -> "subprocess.Popen[str]":
    """Start ``python args...`` with this interpreter; output is merged into stdout.

    It runs outside the source tree by default, so that ``-c`` and ``-m`` import the
    installed package, not the repository's ``pymongoose/`` folder."""
    import tempfile

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    kwargs["cwd"] = str(cwd) if cwd is not None else tempfile.gettempdir()
    return subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


class Program:
    """A pymongoose program run as a subprocess, announcing its port on stdout."""

    def __init__(self, *args: str, cwd: "Path | str | None" = None) -> None:
        self.process = run_python(*args, cwd=cwd)
        self.first_line = self._read_line()
        import re

        match = re.search(r"(https?)://[\w.\[\]:]+?:(\d+)", self.first_line)
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
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()
