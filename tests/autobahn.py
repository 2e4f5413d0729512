"""Run the Autobahn|Testsuite WebSocket fuzzing client against an echo server.

    python tests/autobahn.py                      # pymongoose on this interpreter
    python tests/autobahn.py --server cymongoose  # or the Cython binding, or websockets
    python tests/autobahn.py --cases '9.*' --cases '12.*'

The echo server sends text back as text and binary as binary. The suite is
``autobahntestsuite`` 0.8.2, which runs on Python 2.7 only: the script installs it
(``pip install --target``) into ``--suite-dir`` (default ``~/.cache/pymongoose-autobahn``)
on first use, with the Python 2.7 it finds (``--python2``; else ``python2.7`` on PATH or
under pyenv). It prints one line per server with the count of each verdict, then the
cases that FAILED, and exits 1 if any did. Reports: ``--report-dir`` (HTML and JSON).

Not part of the test suite: it takes minutes (the 9.* cases move gigabytes) and needs
Python 2.7. Cases 1-7 and 10 are the default; 9.* is performance, 12.*/13.* compression.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

SUITE_VERSION = "0.8.2"
DEFAULT_CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "10.*"]
VERDICTS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")

# The echo servers, one per library, each run as `python -c SOURCE PORT`. Both
# bindings take the same handler, unchanged.
_MONGOOSE_ECHO = """
import sys, {binding} as mg
def echo(conn, event, data):
    if event == mg.MG_EV_HTTP_MSG:
        conn.ws_upgrade(data)
    elif event == mg.MG_EV_WS_MSG:
        conn.ws_send(data.data, data.flags & 0x0F)
manager = mg.Manager(echo)
manager.listen("http://127.0.0.1:" + sys.argv[1], http=True)
print("ready", flush=True)
while True:
    manager.poll(1000)
"""
ECHO_SERVERS = {
    "pymongoose": _MONGOOSE_ECHO.format(binding="pymongoose"),
    "cymongoose": _MONGOOSE_ECHO.format(binding="cymongoose"),
    "websockets": """
import asyncio, sys
from websockets.asyncio.server import serve
async def echo(ws):
    async for message in ws:
        await ws.send(message)
async def main():
    async with serve(echo, "127.0.0.1", int(sys.argv[1]), max_size=2**24):
        print("ready", flush=True)
        await asyncio.Future()
asyncio.run(main())
""",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_python2(given: str | None) -> str:
    candidates = [given] if given else [
        *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/2.7*/bin/python")), reverse=True),
        shutil.which("python2.7"), shutil.which("python2")]
    for candidate in candidates:
        # A pyenv shim exists even when it has no 2.7 to run: ask the interpreter.
        if candidate and subprocess.run(
                [candidate, "-c", "import sys; sys.exit(sys.version_info[:2] != (2, 7))"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
            return candidate
    sys.exit("autobahn: no Python 2.7 found; pass --python2 PATH")


def ensure_suite(python2: str, suite_dir: Path) -> None:
    marker = suite_dir / f"autobahntestsuite-{SUITE_VERSION}.installed"
    if marker.exists():
        return
    print(f"autobahn: installing autobahntestsuite {SUITE_VERSION} into {suite_dir}", flush=True)
    subprocess.run([python2, "-m", "pip", "install", "-q", "--target", str(suite_dir),
                    f"autobahntestsuite=={SUITE_VERSION}"], check=True)
    marker.touch()


def implementation(python: str) -> str:
    return subprocess.run([python, "-c", "import platform; print(platform.python_implementation())"],
                          capture_output=True, text=True, check=True).stdout.strip()


def start_server(kind: str, python: str, port: int) -> subprocess.Popen[str]:
    # Its stderr is dropped: websockets logs a traceback for each connection it fails.
    server = subprocess.Popen([python, "-c", ECHO_SERVERS[kind], str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert server.stdout is not None
    if server.stdout.readline().strip() != "ready":
        server.kill()
        sys.exit(f"autobahn: the {kind} echo server did not start")
    return server


def run_suite(python2: str, suite_dir: Path, report_dir: Path, agent: str, port: int,
              cases: list[str], exclude: list[str]) -> dict[str, dict[str, str]]:
    spec = {"outdir": str(report_dir), "cases": cases, "exclude-cases": exclude,
            "exclude-agent-cases": {},
            "servers": [{"agent": agent, "url": f"ws://127.0.0.1:{port}"}]}
    spec_path = report_dir / "fuzzingclient.json"
    spec_path.write_text(json.dumps(spec))
    # `site.addsitedir` reads the namespace-package .pth files --target leaves behind.
    launcher = ("import site, sys; site.addsitedir(sys.argv.pop(1)); "
                "from autobahntestsuite import wstest; wstest.run()")
    subprocess.run([python2, "-c", launcher, str(suite_dir), "-m", "fuzzingclient",
                    "-s", str(spec_path)], check=True, cwd=report_dir,
                   stdout=subprocess.DEVNULL)
    index = json.loads((report_dir / "index.json").read_text())
    return index[agent]  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", action="append", choices=sorted(ECHO_SERVERS),
                        help="library serving the echo (repeatable; default pymongoose)")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter that runs the echo server (e.g. pypy3)")
    parser.add_argument("--cases", action="append", help="case pattern (repeatable)")
    parser.add_argument("--exclude", action="append", default=[], help="case pattern to skip")
    parser.add_argument("--python2", help="a Python 2.7 for the suite")
    parser.add_argument("--suite-dir", type=Path,
                        default=Path.home() / ".cache" / "pymongoose-autobahn")
    parser.add_argument("--report-dir", type=Path, help="keep the reports here")
    args = parser.parse_args()

    python2 = find_python2(args.python2)
    ensure_suite(python2, args.suite_dir)
    failed_any = False
    interpreter = implementation(args.python)
    print(f"{'server':<28}" + "".join(f"{v:>15}" for v in VERDICTS) + f"{'case time':>12}")
    for kind in args.server or ["pymongoose"]:
        report_dir = Path(args.report_dir or tempfile.mkdtemp(prefix="autobahn-")) / kind
        report_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        server = start_server(kind, args.python, port)
        try:
            results = run_suite(python2, args.suite_dir, report_dir, kind, port,
                                args.cases or DEFAULT_CASES, args.exclude)
        finally:
            server.terminate()
            server.wait()
        counts = collections.Counter(r["behavior"] for r in results.values())
        # The suite's own timing of each case, from its first byte to the close.
        case_time = sum(r["duration"] for r in results.values()) / 1000
        label = kind if kind == "websockets" else f"{kind} ({interpreter})"
        print(f"{label:<28}" + "".join(f"{counts.get(v, 0):>15}" for v in VERDICTS) +
              f"{case_time:>10.1f} s")
        failed = sorted((case for case, r in results.items() if r["behavior"] == "FAILED"),
                        key=lambda case: [int(part) for part in case.split(".")])
        if failed:
            failed_any = True
            print(f"  FAILED: {' '.join(failed)}")
        print(f"  reports: {report_dir}")
    return 1 if failed_any else 0


if __name__ == "__main__":
    sys.exit(main())
