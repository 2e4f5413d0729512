"""User-space instructions per keep-alive request, counted by callgrind.

    python3 benchmarks/instructions.py                      # pymongoose, hello, every event
    python3 benchmarks/instructions.py --events http        # events=[MG_EV_HTTP_MSG]
    python3 benchmarks/instructions.py --binding cymongoose
    python3 benchmarks/instructions.py --python /usr/bin/python3 --kind plain
    python3 benchmarks/instructions.py --python .work/cpython/bin/python --kind asgi  # asgi_app.py, Starlette
    python3 benchmarks/instructions.py --kind ws            # per WebSocket message echoed (load: PyPy)
    python3 benchmarks/instructions.py --python .work/cpython/bin/python --kind wsgi  # wsgi_app.py, Flask

req/s and CPU time swing by 10-50% between rounds on a shared machine; the number
of instructions a request costs does not (two runs of the same build agree to a
few in 40,000). It runs ``server.py`` under ``valgrind --tool=callgrind`` twice,
stopping wrk after --first and after --second requests, and divides the
difference by the difference in requests, so start-up and import cost cancel
out. Kernel time is not counted: ``perf`` and ``/proc/PID/stat`` tell that part.
With --top, it also prints the functions whose cost per request is largest.

Needs valgrind, wrk and, for cymongoose, ``pip install cymongoose==0.2.5`` in the
interpreter given. Takes about a minute.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Tuple

from run import COUNT_LUA, HERE, free_port  # benchmarks/run.py: the same wrk script and ports


def profile(args: argparse.Namespace, requests: int, out: Path, script: Path) -> None:
    """Run the server under callgrind until wrk has seen ``requests`` responses."""
    port = free_port()
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", args.python]
    if args.kind == "asgi":
        command += ["-m", "pymongoose", "--asgi", args.app, "--listen", f"http://127.0.0.1:{port}",
                    "--loop", args.loop, "--quiet"]
    elif args.kind == "wsgi":  # as run.py's wsgi suite runs it
        command += ["-m", "pymongoose", "--wsgi", args.app, "--listen", f"http://127.0.0.1:{port}",
                    "--threads", "4", "--quiet"]
    else:
        command += [str(HERE / "server.py"), args.kind, str(port), "--binding", args.binding]
        if args.binding == "pymongoose":
            command += ["--events", args.events]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent), str(HERE), os.environ.get("PYTHONPATH", "")]))
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
                              cwd=HERE)
    try:
        if not wait_until_serving(server, port):
            raise SystemExit("the server did not start (run it alone to see why)")
        if args.kind == "ws":  # ws_load.py stops once that many echoes came back
            load = [args.load_python, str(HERE / "ws_load.py"), str(port), "--seconds", "600", "--messages",
                    str(requests)]
        else:
            load = ["wrk", "-t1", "-c50", "-d600s", "-s", str(script), f"http://127.0.0.1:{port}/", "--",
                    str(requests)]
        subprocess.run(load, check=True, stdout=subprocess.DEVNULL)
    finally:
        server.terminate()  # server.py exits on SIGTERM; callgrind writes its file then
        server.wait(60)


def wait_until_serving(server: "subprocess.Popen[str]", port: int) -> bool:
    """True once ``port`` takes connections (the server under valgrind starts slowly)."""
    deadline = time.monotonic() + 120
    while server.poll() is None and time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


def costs(path: Path) -> Tuple[int, Dict[str, int]]:
    """The total and the per-function (self) instruction counts of a callgrind file."""
    text = subprocess.run(["callgrind_annotate", "--threshold=100", str(path)], capture_output=True,
                          text=True, check=True).stdout
    total = int(re.search(r"([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", text).group(1).replace(",", ""))  # type: ignore[union-attr]
    functions: Dict[str, int] = collections.Counter()
    for line in text.split("file:function", 1)[-1].splitlines():
        match = re.match(r"\s*([\d,]+) \(.*?\)\s+(.*?)\s*\[(.*)\]\s*$", line)
        if match:
            name = f"{Path(match.group(3)).name.split('.')[0]}: {match.group(2).split(':', 1)[-1]}"
            functions[name] += int(match.group(1).replace(",", ""))
    return total, functions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="the interpreter that runs the server")
    parser.add_argument("--binding", default="pymongoose", choices=("pymongoose", "cymongoose"))
    parser.add_argument("--kind", default="hello", choices=("hello", "plain", "ws", "asgi", "wsgi"),
                        help="ws: per message echoed, not per request; asgi, wsgi: the app servers "
                             "(python -m pymongoose --asgi/--wsgi) with asgi_app.py / wsgi_app.py")
    parser.add_argument("--load-python", default="pypy3", help="--kind ws: the interpreter that runs ws_load.py")
    parser.add_argument("--app", help="--kind asgi or wsgi: the application (default asgi_app:app or "
                                      "wsgi_app:app; asgi_raw:app has no framework)")
    parser.add_argument("--loop", default="uvloop", help="--kind asgi: the asyncio loop (uvloop or asyncio)")
    parser.add_argument("--events", default="all", choices=("all", "http"))
    parser.add_argument("--first", type=int, default=2000)
    parser.add_argument("--second", type=int, default=10000)
    parser.add_argument("--top", type=int, default=0, help="also print the N costliest functions per request")
    args = parser.parse_args()
    args.app = args.app or f"{args.kind}_app:app"
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "count.lua"
        script.write_text(COUNT_LUA)
        first, second = Path(tmp) / "first.out", Path(tmp) / "second.out"
        started = time.monotonic()
        profile(args, args.first, first, script)
        profile(args, args.second, second, script)
        (total_a, funcs_a), (total_b, funcs_b) = costs(first), costs(second)
    requests = args.second - args.first
    label = f"{args.binding} {args.kind}" + (f" {args.app}, loop={args.loop}" if args.kind == "asgi" else
                                             f" {args.app}" if args.kind == "wsgi" else
                                             f", events={args.events}" if args.binding == "pymongoose" else "")
    unit = "message" if args.kind == "ws" else "request"
    print(f"{label}: {(total_b - total_a) / requests:,.0f} instructions per {unit} "
          f"({time.monotonic() - started:.0f} s)")
    per_request = {name: (funcs_b[name] - funcs_a.get(name, 0)) / requests for name in funcs_b}
    for name, cost in sorted(per_request.items(), key=lambda item: -item[1])[:args.top]:
        print(f"  {cost:8,.0f}  {name}")


if __name__ == "__main__":
    main()
