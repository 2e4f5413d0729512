"""Run every benchmark, print one table, write results.json and chart.png.

    python3 benchmarks/run.py              # all suites, 3 rounds (about 15 minutes)
    python3 benchmarks/run.py --quick      # 1 round, shorter runs
    python3 benchmarks/run.py --only http  # one suite: http, websocket, mqtt, static, scale, memory,
                                           # burst, tls, wsgi, asgi

It prepares what it needs under benchmarks/.work/ (git-ignored): a CPython and a
PyPy virtualenv with this checkout of pymongoose installed, one with cymongoose
0.2.5, and the plain-C baseline server. Servers run on CPU 0 and load generators
on CPU 1 (taskset); the servers being compared take turns within each round, and
figures are medians over rounds. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / ".work"
SERVER_CPU, LOAD_CPU = "0", "1"


# ---- environments -------------------------------------------------------------

def venv(name: str, interpreter: str, *packages: str) -> Path:
    """A virtualenv under .work/ with ``packages`` installed; returns its python."""
    path = WORK / name
    python = path / "bin" / "python"
    marker = path / ".installed"
    if not marker.exists() or marker.read_text() != " ".join(packages):
        shutil.rmtree(path, ignore_errors=True)
        subprocess.run([interpreter, "-m", "venv", str(path)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
        marker.write_text(" ".join(packages))
    return python


def c_baseline() -> Path:
    """Build benchmarks/c_baseline against the vendored Mongoose (same defines)."""
    binary = HERE / "c_baseline"
    source = REPO / "vendor" / "mongoose"
    if not (source / "mongoose.c").exists():
        subprocess.run([sys.executable, str(REPO / "vendor" / "fetch_mongoose.py")], check=True)
    if not binary.exists() or binary.stat().st_mtime < (HERE / "c_baseline.c").stat().st_mtime:
        subprocess.run(["gcc", "-O2", "-o", str(binary), str(HERE / "c_baseline.c"), str(source / "mongoose.c"),
                        f"-I{source}", "-DMG_TLS=MG_TLS_BUILTIN", "-DMG_ENABLE_IPV6=1", "-DMG_IO_SIZE=16384",
                        "-DMG_ENABLE_EPOLL=1"], check=True)
    return binary


def checkout_state() -> str:
    """What the checkout holds now: HEAD and any uncommitted change to it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout
    return git("rev-parse", "HEAD").strip() + " " + hashlib.sha256(git("diff", "HEAD").encode()).hexdigest()


def with_this_checkout(python: Path) -> Path:
    """Install this checkout into a venv again whenever it changed since the last
    install: a benchmark of an older build would be silently wrong."""
    marker = python.parent.parent / ".checkout"
    state = checkout_state()
    if not marker.exists() or marker.read_text() != state:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(REPO)],
                       check=True)
        marker.write_text(state)
    return python


def environments() -> Dict[str, Path]:
    extras = ("websocket-client", "paho-mqtt", "matplotlib", "socketify", "uvicorn")
    wsgi = ("flask", "gunicorn", "waitress")
    asgi = ("starlette", "uvicorn", "httptools", "websockets", "granian")
    return {
        "cpython": with_this_checkout(venv("cpython", sys.executable, "cffi", *extras, *wsgi, *asgi, "uvloop")),
        "pypy": with_this_checkout(venv("pypy", shutil.which("pypy3") or "pypy3", "socketify", *wsgi, *asgi)),
        "cymongoose": venv("cymongoose", sys.executable, "cymongoose==0.2.5"),
    }


# ---- running servers and load ------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A server process pinned to the server CPU, ready once it prints a line (or,
    for servers that print nothing, once ``port`` accepts connections)."""

    def __init__(self, command: List[str], port: Optional[int] = None,
                 env: Optional[Dict[str, str]] = None) -> None:
        self.process = subprocess.Popen(["taskset", "-c", SERVER_CPU, *command], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, cwd=str(WORK),
                                        preexec_fn=_raise_fd_limit, env=env)
        if port is not None:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.process.poll() is None:
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", port)) == 0:
                        return
                time.sleep(0.05)
            self.stop()
            raise RuntimeError(f"{command} did not start listening on {port}")
        line = self.process.stdout.readline() if self.process.stdout else ""
        if "ready" not in line:
            self.stop()
            raise RuntimeError(f"{command} did not start: {line}")

    def cpu_seconds(self) -> Tuple[float, float]:
        """User and system CPU seconds the server has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick

    def rss_kib(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status)[1])  # type: ignore[index]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _raise_fd_limit() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


def load(command: List[str]) -> str:
    result = subprocess.run(["taskset", "-c", LOAD_CPU, *command], capture_output=True, text=True, cwd=str(WORK),
                            preexec_fn=_raise_fd_limit, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"{command} failed: {result.stderr}")
    return result.stdout


def rounds(configs: Dict[str, Callable[[], float]], count: int) -> Dict[str, float]:
    """Each round runs every config once, in turn; returns the median per config."""
    samples: Dict[str, List[float]] = {name: [] for name in configs}
    for _ in range(count):
        for name, measure in configs.items():
            samples[name].append(measure())
            print(f"  {name}: {samples[name][-1]:,.1f}", flush=True)
    return {name: statistics.median(values) for name, values in samples.items()}


# ---- suites ------------------------------------------------------------------------

def http_suite(envs: Dict[str, Path], args: Any) -> Dict[str, float]:
    """Hello requests/second, wrk -t1 -c50, keep-alive, and the server's CPU per
    request (user and system microseconds, from /proc: steadier than req/s on a
    shared machine). "hello" is the real handler (JSON with its own Content-Type
    header); "plain" the bare "Hello, World!" with the default type."""
    server = str(HERE / "server.py")
    socketify = str(HERE / "socketify_server.py")
    cpython, pypy, cym = str(envs["cpython"]), str(envs["pypy"]), str(envs["cymongoose"])
    def same_on_all(kind: str, suffix: str) -> Dict[str, Callable[[int], List[str]]]:
        """The rows every handler has: C, cymongoose, pymongoose with all events."""
        tail = [] if kind == "hello" else [kind]  # c_baseline answers hello unless told
        return {
            f"C baseline{suffix}": lambda port: [str(c_baseline()), str(port), *tail],
            f"cymongoose (CPython){suffix}": lambda port: [cym, server, kind, str(port), "--binding", "cymongoose"],
            f"pymongoose CPython, all events{suffix}": lambda port: [cpython, server, kind, str(port)],
            f"pymongoose PyPy, all events{suffix}": lambda port: [pypy, server, kind, str(port)],
        }

    commands = {
        **same_on_all("hello", ""),
        "pymongoose CPython, events=[HTTP_MSG]": lambda port: [cpython, server, "hello", str(port),
                                                               "--events", "http"],
        "pymongoose PyPy, events=[HTTP_MSG]": lambda port: [pypy, server, "hello", str(port), "--events", "http"],
        "socketify CPython": lambda port: [cpython, socketify, "hello", str(port)],
        "socketify PyPy": lambda port: [pypy, socketify, "hello", str(port)],
        **same_on_all("plain", ", plain"),
    }
    cpu: Dict[str, List[float]] = {}

    def measure(name: str, make: Callable[[int], List[str]]) -> Callable[[], float]:
        def run() -> float:
            port = free_port()
            server = Server(make(port))
            try:
                if "pypy" in " ".join(make(port)):  # let the JIT warm up
                    load(["wrk", "-t1", "-c50", "-d2s", f"http://127.0.0.1:{port}/"])
                before = server.cpu_seconds()
                out = load(["wrk", "-t1", "-c50", f"-d{args.duration}s", f"http://127.0.0.1:{port}/"])
                after = server.cpu_seconds()
            finally:
                server.stop()
            requests = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
            for which, spent in zip(("user", "system"), (after[0] - before[0], after[1] - before[1])):
                cpu.setdefault(f"{name}: {which} CPU µs/req", []).append(spent / max(requests, 1) * 1e6)
            return float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
        return run

    results = rounds({name: measure(name, make) for name, make in commands.items()}, args.rounds)
    results.update({name: round(statistics.median(values), 3) for name, values in cpu.items()})
    return results


def memory_suite(envs: Dict[str, Path], args: Any) -> Dict[str, float]:
    """The server's RSS (MiB) after 50,000 keep-alive hello requests (wrk -t1 -c50
    stopped by a count), and at start: memory a long-running server keeps."""
    server, socketify = str(HERE / "server.py"), str(HERE / "socketify_server.py")
    commands = {
        "cymongoose (CPython)": [str(envs["cymongoose"]), server, "hello", "--binding", "cymongoose"],
        "pymongoose CPython": [str(envs["cpython"]), server, "hello"],
        "pymongoose PyPy": [str(envs["pypy"]), server, "hello"],
        "socketify PyPy": [str(envs["pypy"]), socketify, "hello"],
    }
    script = WORK / "count.lua"
    script.write_text(COUNT_LUA)
    results: Dict[str, float] = {}
    for name, command in commands.items():
        port = free_port()
        started = Server([command[0], command[1], command[2], str(port), *command[3:]])
        try:
            time.sleep(0.5)
            at_start = started.rss_kib()
            load(["wrk", "-t1", "-c50", "-d120s", "-s", str(script), f"http://127.0.0.1:{port}/",
                  "--", str(args.memory_requests)])
            time.sleep(0.5)
            after = started.rss_kib()
        finally:
            started.stop()
        results[f"{name}: RSS MiB at start"] = round(at_start / 1024, 1)
        results[f"{name}: RSS MiB after {args.memory_requests:,} requests"] = round(after / 1024, 1)
        print(f"  {name}: {at_start / 1024:.1f} -> {after / 1024:.1f} MiB", flush=True)
    return results


# wrk (one thread) exits once it has seen the given number of responses: its
# thread:stop() would leave the process waiting out the whole -d duration.
COUNT_LUA = """
local wanted, seen = 50000, 0
function init(args) if args[1] then wanted = tonumber(args[1]) end end
function response(status, headers, body)
  seen = seen + 1
  if seen >= wanted then os.exit(0) end
end
"""


def websocket_suite(envs: Dict[str, Path], args: Any) -> Dict[str, float]:
    """WebSocket echo messages/second, from a PyPy load generator, and the server's
    user and system CPU µs per message (steadier: the generator may be what limits
    the fastest servers)."""
    server_script, generator = str(HERE / "server.py"), str(HERE / "ws_load.py")
    commands = {
        "cymongoose (CPython)": [str(envs["cymongoose"]), server_script, "ws", "--binding", "cymongoose"],
        "pymongoose CPython": [str(envs["cpython"]), server_script, "ws"],
        "pymongoose PyPy": [str(envs["pypy"]), server_script, "ws"],
        "socketify CPython": [str(envs["cpython"]), str(HERE / "socketify_server.py"), "ws"],
        "socketify PyPy": [str(envs["pypy"]), str(HERE / "socketify_server.py"), "ws"],
    }

    cpu: Dict[str, List[float]] = {}

    def measure(name: str, command: List[str]) -> Callable[[], float]:
        def run() -> float:
            port = free_port()
            server = Server([*command, str(port)])
            try:
                if "pypy" in command[0]:  # let the JIT warm up
                    load([str(envs["pypy"]), generator, str(port), "--seconds", "2"])
                before = server.cpu_seconds()
                out = load([str(envs["pypy"]), generator, str(port), "--seconds", str(args.duration)])
                after = server.cpu_seconds()
            finally:
                server.stop()
            echoed = int(re.search(r"\((\d+) echoed\)", out)[1])  # type: ignore[index]
            for which, spent in zip(("user", "system"), (after[0] - before[0], after[1] - before[1])):
                cpu.setdefault(f"{name}: {which} CPU µs/msg", []).append(spent / max(echoed, 1) * 1e6)
            return float(out.split()[0])
        return run

    results = rounds({name: measure(name, command) for name, command in commands.items()}, args.rounds)
    results.update({name: round(statistics.median(values), 3) for name, values in cpu.items()})
    return results


def mqtt_suite(envs: Dict[str, Path], args: Any) -> Dict[str, float]:
    """Publish + receive messages/second through a local mosquitto."""
    broker_port = free_port()
    config = WORK / "mosquitto.conf"
    # No queue or in-flight limits: mosquitto would drop QoS 1 messages past them.
    config.write_text(f"listener {broker_port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                      "max_queued_messages 0\nmax_inflight_messages 0\nmax_queued_bytes 0\n"
                      + ("user root\n" if os.geteuid() == 0 else ""))
    broker = subprocess.Popen(["taskset", "-c", SERVER_CPU, shutil.which("mosquitto") or "/usr/sbin/mosquitto",
                               "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    script = str(HERE / "mqtt_throughput.py")
    try:
        configs = {}
        for qos in (0, 1):
            for label, python, client in (("pymongoose CPython", envs["cpython"], "pymongoose"),
                                          ("pymongoose PyPy", envs["pypy"], "pymongoose"),
                                          ("paho-mqtt CPython", envs["cpython"], "paho")):
                command = [str(python), script, str(broker_port), "--client", client, "--qos", str(qos),
                           "--messages", str(args.mqtt_messages)]
                configs[f"QoS {qos}: {label}"] = (lambda command=command: float(load(command).split()[0]))
        return rounds(configs, args.rounds)
    finally:
        broker.terminate()
        broker.wait()


def static_suite(envs: Dict[str, Path], args: Any) -> Dict[str, float]:
    """MB/s serving one 100 MB file (serve_dir), fetched by curl."""
    root = WORK / "static"
    root.mkdir(exist_ok=True)
    blob = root / "blob.bin"
    if not blob.exists() or blob.stat().st_size != 100 << 20:
        blob.write_bytes(os.urandom(100 << 20))
    script = str(HERE / "server.py")
    commands = {
        "cymongoose (CPython)": [str(envs["cymongoose"]), script, "static", "--binding", "cymongoose"],
        "pymongoose CPython": [str(envs["cpython"]), script, "static"],
        "pymongoose PyPy": [str(envs["pypy"]), script, "static"],
    }

    def measure(command: List[str]) -> Callable[[], float]:
        def run() -> float:
            port = free_port()
            server = Server([*command, str(port), "--root", str(root)])
            try:
                out = load(["curl", "-s", "-o", "/dev/null", "-w", "%{speed_download}",
                            f"http://127.0.0.1:{port}/blob.bin"])
            finally:
                server.stop()
            return float(out) / 1e6
        return run

    return rounds({name: measure(command) for name, command in commands.items()}, args.rounds)


def scale_suite(envs: Dict[str, Path], args: Any) -> Dict[str, float]:
    """Idle connections held at once, and server memory (KiB of RSS) per connection."""
    server_script, holder = str(HERE / "server.py"), str(HERE / "hold_connections.py")
    commands = {
        "cymongoose (CPython)": [str(envs["cymongoose"]), "--binding", "cymongoose"],
        "pymongoose CPython": [str(envs["cpython"])],
        "pymongoose PyPy": [str(envs["pypy"])],
    }
    results: Dict[str, float] = {}
    for name, command in commands.items():
        port = free_port()
        server = Server([command[0], server_script, "hello", str(port), *command[1:]])
        try:
            before = server.rss_kib()
            holder_process = subprocess.Popen(["taskset", "-c", LOAD_CPU, str(envs["pypy"]), holder, str(port),
                                               str(args.connections)], stdout=subprocess.PIPE, text=True,
                                              preexec_fn=_raise_fd_limit, cwd=str(WORK))
            held, served = map(int, holder_process.stdout.readline().split())  # type: ignore[union-attr]
            time.sleep(1)
            after = server.rss_kib()
            holder_process.terminate()
            holder_process.wait()
        finally:
            server.stop()
        results[f"{name}: connections held"] = held
        results[f"{name}: connections served"] = served
        results[f"{name}: RSS KiB per connection"] = round((after - before) / max(held, 1), 2)
        print(f"  {name}: {held} held, {served} served, {(after - before) / max(held, 1):.2f} KiB each", flush=True)
    return results


def burst_suite(envs: Dict[str, Path], args: Any) -> Dict[str, float]:
    """A burst of new connections, one request each: connections/second, and
    milliseconds to the first response."""
    server_script, generator = str(HERE / "server.py"), str(HERE / "burst.py")
    commands = {
        "cymongoose (CPython)": [str(envs["cymongoose"]), server_script, "hello", "--binding", "cymongoose"],
        "pymongoose CPython": [str(envs["cpython"]), server_script, "hello"],
        "pymongoose PyPy": [str(envs["pypy"]), server_script, "hello"],
    }
    configs: Dict[str, Callable[[], float]] = {}
    firsts: Dict[str, List[float]] = {name: [] for name in commands}

    def measure(name: str, command: List[str]) -> Callable[[], float]:
        def run() -> float:
            port = free_port()
            server = Server([command[0], command[1], command[2], str(port), *command[3:]])
            try:
                rate, first, _ = map(float, load([str(envs["pypy"]), generator, str(port), "--connections",
                                                  str(args.burst)]).split())
            finally:
                server.stop()
            firsts[name].append(first)
            return rate
        return run

    for name, command in commands.items():
        configs[name] = measure(name, command)
    results = rounds(configs, args.rounds)
    for name in commands:
        results[f"{name}: ms to first response"] = statistics.median(firsts[name])
    return results


def tls_certificates() -> Dict[str, Path]:
    """A CA and P-256 and RSA-2048 certificates for localhost, made with openssl once."""
    folder = WORK / "tls"
    made = {"ca": folder / "ca.pem", "ec": folder / "ec", "rsa": folder / "rsa"}
    if (folder / "rsa.pem").exists():
        return made
    folder.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(folder / "ca.key"))
    openssl("req", "-x509", "-new", "-key", str(folder / "ca.key"), "-days", "365", "-subj", "/CN=bench CA",
            "-out", str(folder / "ca.pem"))
    for kind, keygen in (("ec", ["ecparam", "-name", "prime256v1", "-genkey", "-noout"]),
                         ("rsa", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])):
        key, csr, cert = (str(folder / f"{kind}.{ext}") for ext in ("key", "csr", "pem"))
        openssl(*keygen, "-out", key)
        openssl("req", "-new", "-key", key, "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-out", csr)
        openssl("x509", "-req", "-in", csr, "-CA", str(folder / "ca.pem"), "-CAkey", str(folder / "ca.key"),
                "-CAcreateserial", "-days", "365", "-copy_extensions", "copy", "-out", cert)
    return made


def tls_suite(envs: Dict[str, Path], args: Any) -> Dict[str, float]:
    """New HTTPS connections/s (handshake, one request, close; Python ssl client, also
    offering the previous session) and HTTPS keep-alive requests/s (wrk), against
    cymongoose and uvicorn with Python's ssl; and our client's new connections/s to
    ``openssl s_server``, full handshakes and resumed."""
    certs = tls_certificates()
    server = str(HERE / "server.py")

    def ours(python: Path, kind: str, binding: str = "pymongoose") -> Callable[[int], List[str]]:
        return lambda port: [str(python), server, "hello", str(port), "--binding", binding,
                             "--tls-cert", f"{certs[kind]}.pem", "--tls-key", f"{certs[kind]}.key"]

    def uvicorn(port: int) -> List[str]:
        return [str(envs["cpython"]), "-m", "uvicorn", "--app-dir", str(HERE), "asgi_hello:app", "--port",
                str(port), "--log-level", "warning", "--ssl-certfile", f"{certs['ec']}.pem",
                "--ssl-keyfile", f"{certs['ec']}.key"]

    servers = {
        "cymongoose (CPython), P-256": ours(envs["cymongoose"], "ec", "cymongoose"),
        "pymongoose CPython, P-256": ours(envs["cpython"], "ec"),
        "pymongoose CPython, RSA-2048": ours(envs["cpython"], "rsa"),
        "pymongoose PyPy, P-256": ours(envs["pypy"], "ec"),
        "uvicorn + Python ssl (CPython), P-256": uvicorn,
    }

    def start(make: Callable[[int], List[str]], port: int) -> Server:
        command = make(port)
        return Server(command, port=port if "uvicorn" in command else None)

    def connections(make: Callable[[int], List[str]], *options: str) -> Callable[[], float]:
        def run() -> float:
            port = free_port()
            process = start(make, port)
            try:
                out = load([str(envs["cpython"]), str(HERE / "tls_handshakes.py"), str(port), "--ca",
                            str(certs["ca"]), "--seconds", str(args.duration), *options])
            finally:
                process.stop()
            return float(out.split()[0])
        return run

    def keep_alive(make: Callable[[int], List[str]]) -> Callable[[], float]:
        def run() -> float:
            port = free_port()
            process = start(make, port)
            try:
                out = load(["wrk", "-t1", "-c50", f"-d{args.duration}s", f"https://127.0.0.1:{port}/"])
            finally:
                process.stop()
            return float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
        return run

    def our_client(*options: str) -> Callable[[], float]:
        def run() -> float:
            port = free_port()
            process = Server(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", f"{certs['ec']}.pem",
                              "-key", f"{certs['ec']}.key", "-www", "-quiet"], port=port)
            try:
                out = load([str(envs["cpython"]), str(HERE / "tls_client_handshakes.py"), str(port), "--ca",
                            str(certs["ca"]), "--seconds", str(args.duration), *options])
            finally:
                process.stop()
            return float(out.split()[0])
        return run

    configs = {f"{name}: new connections/s": connections(make) for name, make in servers.items()}
    for name in ("pymongoose CPython, P-256", "uvicorn + Python ssl (CPython), P-256"):
        configs[f"{name}: new connections/s, session resumed"] = connections(servers[name], "--resume")
    configs["pymongoose client (CPython) to openssl s_server: new connections/s"] = our_client("--no-resume")
    configs["pymongoose client (CPython) to openssl s_server: new connections/s, session resumed"] = our_client()
    configs.update({f"{name}: keep-alive req/s": keep_alive(make) for name, make in servers.items()})
    return rounds(configs, args.rounds)


WSGI_THREADS = "4"


def wsgi_suite(envs: Dict[str, Path], args: Any) -> Dict[str, float]:
    """The same Flask hello-JSON app (wsgi_app.py) on each WSGI server, one process
    with 4 threads each: requests/second and p99 latency (ms), wrk -t1 -c50."""
    def pymongoose(python: Path) -> Callable[[int], List[str]]:
        return lambda port: [str(python), "-m", "pymongoose", "--wsgi", "wsgi_app:app", "--listen",
                             f"http://127.0.0.1:{port}", "--threads", WSGI_THREADS, "--quiet"]

    def gunicorn(python: Path) -> Callable[[int], List[str]]:
        return lambda port: [str(python), "-m", "gunicorn", "-k", "gthread", "--threads", WSGI_THREADS, "-w", "1",
                             "-b", f"127.0.0.1:{port}", "wsgi_app:app"]

    def waitress(python: Path) -> Callable[[int], List[str]]:
        return lambda port: [str(python), "-m", "waitress", f"--threads={WSGI_THREADS}",
                             f"--listen=127.0.0.1:{port}", "wsgi_app:app"]

    def granian(python: Path) -> Callable[[int], List[str]]:
        return lambda port: [str(python), "-m", "granian", "--interface", "wsgi", "--workers", "1",
                             "--blocking-threads", WSGI_THREADS, "--host", "127.0.0.1", "--port", str(port),
                             "wsgi_app:app"]

    servers = {
        "pymongoose CPython": pymongoose(envs["cpython"]),
        "gunicorn gthread CPython": gunicorn(envs["cpython"]),
        "waitress CPython": waitress(envs["cpython"]),
        "granian CPython": granian(envs["cpython"]),
        "pymongoose PyPy": pymongoose(envs["pypy"]),
        "gunicorn gthread PyPy": gunicorn(envs["pypy"]),
        "waitress PyPy": waitress(envs["pypy"]),
    }
    latencies: Dict[str, List[float]] = {name: [] for name in servers}
    results = rounds({f"{name}: req/s": _wrk_requests(name, make, args, latencies[name])
                      for name, make in servers.items()}, args.rounds)
    results.update({f"{name}: p99 ms": statistics.median(values) for name, values in latencies.items() if values})
    return results


def asgi_suite(envs: Dict[str, Path], args: Any) -> Dict[str, float]:
    """The same Starlette app (asgi_app.py) on each ASGI server, one process each:
    hello JSON requests/second and p99 (wrk -t1 -c50), and WebSocket echo
    messages/second (ws_load.py). CPython servers run on uvloop where they can."""
    def pymongoose(python: Path, loop: str) -> Callable[[int], List[str]]:
        return lambda port: [str(python), "-m", "pymongoose", "--asgi", "asgi_app:app", "--listen",
                             f"http://127.0.0.1:{port}", "--loop", loop, "--quiet"]

    def uvicorn(python: Path, loop: str) -> Callable[[int], List[str]]:
        return lambda port: [str(python), "-m", "uvicorn", "--loop", loop, "--http", "httptools", "--ws",
                             "websockets", "--log-level", "warning", "--port", str(port), "asgi_app:app"]

    def granian(python: Path) -> Callable[[int], List[str]]:
        return lambda port: [str(python), "-m", "granian", "--interface", "asgi", "--workers", "1",
                             "--host", "127.0.0.1", "--port", str(port), "asgi_app:app"]

    def socketify(python: Path) -> Callable[[int], List[str]]:
        return lambda port: [str(python), str(HERE / "socketify_asgi.py"), "asgi_app:app", str(port)]

    servers = {
        "pymongoose CPython": pymongoose(envs["cpython"], "uvloop"),
        "uvicorn CPython (uvloop, httptools)": uvicorn(envs["cpython"], "uvloop"),
        "granian CPython": granian(envs["cpython"]),
        "socketify CPython": socketify(envs["cpython"]),
        "pymongoose PyPy": pymongoose(envs["pypy"], "asyncio"),
        "uvicorn PyPy (httptools)": uvicorn(envs["pypy"], "asyncio"),
        "granian PyPy": granian(envs["pypy"]),
        "socketify PyPy": socketify(envs["pypy"]),
    }
    latencies: Dict[str, List[float]] = {name: [] for name in servers}
    generator = str(HERE / "ws_load.py")

    def echo(name: str, make: Callable[[int], List[str]]) -> Callable[[], float]:
        def run() -> float:
            server, port = _app_server(make)
            try:
                if "pypy" in name.lower():
                    load([str(envs["pypy"]), generator, str(port), "--seconds", "2"])
                out = load([str(envs["pypy"]), generator, str(port), "--seconds", str(args.duration)])
            finally:
                server.stop()
            return float(out.split()[0])
        return run

    configs: Dict[str, Callable[[], float]] = {}
    for name, make in servers.items():
        configs[f"{name}: hello JSON req/s"] = _wrk_requests(name, make, args, latencies[name])
        configs[f"{name}: WebSocket echo msgs/s"] = echo(name, make)
    results = rounds(configs, args.rounds)
    results.update({f"{name}: hello JSON p99 ms": statistics.median(values)
                    for name, values in latencies.items() if values})
    return results


def _app_server(make: Callable[[int], List[str]]) -> Tuple[Server, int]:
    """A server of the wsgi or asgi suite (its app in this folder) on a free port."""
    port = free_port()
    return Server(make(port), port=port, env=dict(os.environ, PYTHONPATH=str(HERE))), port


def _wrk_requests(name: str, make: Callable[[int], List[str]], args: Any,
                  p99s: List[float]) -> Callable[[], float]:
    """A measure of requests/second by wrk -t1 -c50 on the server ``make`` starts;
    each run's p99 (ms) goes into ``p99s``. PyPy servers are warmed up first."""
    def run() -> float:
        server, port = _app_server(make)
        try:
            if "pypy" in name.lower():  # let the JIT warm up
                load(["wrk", "-t1", "-c50", "-d3s", f"http://127.0.0.1:{port}/"])
            out = load(["wrk", "-t1", "-c50", f"-d{args.duration}s", "--latency", f"http://127.0.0.1:{port}/"])
        finally:
            server.stop()
        if "Non-2xx" in out:
            raise RuntimeError(f"{name} answered errors: {out}")
        p99s.append(_wrk_p99_ms(out))
        return float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    return run


def _wrk_p99_ms(out: str) -> float:
    match = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    if match is None:
        return float("nan")
    return float(match[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match[2]]


SUITES = {"http": http_suite, "websocket": websocket_suite, "mqtt": mqtt_suite, "static": static_suite,
          "scale": scale_suite, "memory": memory_suite, "burst": burst_suite, "tls": tls_suite,
          "wsgi": wsgi_suite, "asgi": asgi_suite}


# ---- report --------------------------------------------------------------------------

def ratio(results: Dict[str, float], name: str, reference: str) -> Optional[float]:
    return results[name] / results[reference] if results.get(reference) else None


def report(all_results: Dict[str, Dict[str, float]]) -> str:
    lines = ["| suite | configuration | result | vs cymongoose | vs C baseline |", "|---|---|---|---|---|"]
    units = {"http": "req/s", "websocket": "msg/s", "mqtt": "msg/s", "static": "MB/s", "scale": "", "memory": "",
             "burst": "conn/s", "tls": "", "wsgi": "", "asgi": ""}
    for suite, results in all_results.items():
        for name, value in results.items():
            # A row is compared with the same measure of cymongoose and of C: "..., plain"
            # with the plain rows, "...: user CPU µs/req" with the same CPU rows.
            measure = name.split(":", 1)[1] if ":" in name else ""
            variant = ", plain" if name.split(":")[0].endswith(", plain") else ""
            cym = f"cymongoose (CPython){variant}" + (f":{measure}" if measure else "")
            comparable = suite in ("http", "websocket", "static") or (suite == "burst" and ":" not in name)
            versus_cym = ratio(results, name, cym) if comparable else None
            versus_c = ratio(results, name, f"C baseline{variant}" + (f":{measure}" if measure else "")) \
                if suite == "http" else None
            if suite == "mqtt":
                qos = name.split(":")[0]
                versus_cym = ratio(results, name, f"{qos}: paho-mqtt CPython")
            if suite == "tls":  # each measure against cymongoose's same measure
                versus_cym = ratio(results, name, "cymongoose (CPython), P-256:" + name.split(":", 1)[1])
            unit = "ms" if name.endswith("ms to first response") else "" if ":" in name else units[suite]
            cells = [suite, name, f"{value:,.1f} {unit}".strip(),
                     f"{versus_cym:.2f}x" + (" (vs paho)" if suite == "mqtt" else "") if versus_cym else "",
                     f"{versus_c:.2f}x" if versus_c else ""]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chart(all_results: Dict[str, Dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [suite for suite in ("http", "websocket", "mqtt", "static") if suite in all_results]
    if not panels:
        return  # nothing to draw (e.g. --only tls)
    figure, axes = plt.subplots(len(panels), 1, figsize=(9, 2.6 * len(panels)), squeeze=False)
    titles = {"http": "HTTP hello world (req/s)", "websocket": "WebSocket echo (msg/s)",
              "mqtt": "MQTT publish + receive (msg/s)", "static": "Static 100 MB file (MB/s)"}
    for axis, suite in zip(axes[:, 0], panels):
        shown = {name: value for name, value in all_results[suite].items() if " CPU µs/" not in name}
        names, values = list(shown), list(shown.values())
        colors = ["#4c72b0" if "pymongoose" in n else "#999999" for n in names]
        axis.barh(names[::-1], values[::-1], color=colors[::-1])
        axis.set_title(titles[suite], fontsize=10, loc="left")
        axis.tick_params(labelsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--quick", action="store_true", help="1 round of 3 seconds")
    parser.add_argument("--only", choices=sorted(SUITES), action="append")
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--burst", type=int, default=5_000, help="connections in the burst suite")
    parser.add_argument("--mqtt-messages", type=int, default=100_000)
    parser.add_argument("--memory-requests", type=int, default=50_000, help="requests in the memory suite")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 3
    for tool in ("wrk", "taskset", "pypy3", "curl", "gcc"):
        if shutil.which(tool) is None:
            sys.exit(f"error: {tool} is not installed (see benchmarks/README.md)")
    WORK.mkdir(exist_ok=True)
    envs = environments()
    results: Dict[str, Dict[str, float]] = {}
    for suite in args.only or list(SUITES):
        print(f"== {suite}", flush=True)
        results[suite] = SUITES[suite](envs, args)
    print(report(results))
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    if args.only and (out / "results.json").exists():  # the other suites' last figures stay
        results = {**json.loads((out / "results.json").read_text()), **results}
    table = report(results)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "table.md").write_text(table + "\n")
    subprocess.run([str(envs["cpython"]), "-c", f"import sys; sys.path.insert(0, {str(HERE)!r}); import run; "
                    f"import json; run.chart(json.load(open({str(out / 'results.json')!r})), "
                    f"__import__('pathlib').Path({str(out / 'chart.png')!r}))"], check=True)
    print(f"wrote {out / 'results.json'}, {out / 'table.md'} and {out / 'chart.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
