"""The command line: serve a folder, a WSGI application or an ASGI application.

    python -m pymongoose [--root DIR] [--listen URL]
    python -m pymongoose --wsgi module:app [--listen URL] [--threads N] [--workers N]
    python -m pymongoose --asgi module:app [--listen URL] [--workers N] [--loop uvloop]

Defaults: the current folder, on http://127.0.0.1:8000. ``--workers N`` runs N
processes that share the port (SO_REUSEPORT; the kernel spreads connections); a
WSGI one runs the application in ``--threads`` threads, an ASGI one on its event
loop (uvloop when installed, unless ``--loop asyncio``). Ctrl-C or SIGTERM stops
accepting, lets the requests in flight finish (``--grace`` seconds at most) and
exits 0; an ASGI application whose lifespan startup fails exits 3. Every server
answers 408 to a request head that has not arrived whole within
``--timeout-header-read`` seconds (30) and closes connections idle between requests
for ``--timeout-keep-alive`` seconds (5). ``--ssl-certfile`` and ``--ssl-keyfile``
serve HTTPS (an ``http://`` URL becomes ``https://``); ``--ssl-ca-certs`` also asks
every client for a certificate issued by those CAs. ``--log-level`` and
``--access-log``/``--no-access-log`` say what is logged (``--quiet``: warnings
only, no access lines).

Every flag can also come from the environment, as ``PYMONGOOSE_SERVE_`` and its name
(``--ssl-certfile`` -> ``PYMONGOOSE_SERVE_SSL_CERTFILE``; for a switch, ``1``,
``true`` or ``yes``, or ``0``, ``false`` or ``no``); the command line wins.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional
from urllib.parse import urlsplit, urlunsplit

from . import MG_EV_HTTP_MSG, HttpLimits, ListenError, Manager, TlsOpts, __version__
from ._apps import load_app
from .servers.listen import banner

logger = logging.getLogger("pymongoose.serve")


def _parse(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pymongoose",
        description="Serve a folder, a WSGI application or an ASGI application over HTTP with Mongoose.",
    )
    parser.add_argument("--root", default=".", help="folder to serve (default: the current one)")
    apps = parser.add_mutually_exclusive_group()
    apps.add_argument("--wsgi", metavar="MODULE:APP", help="serve this WSGI application instead of a folder")
    apps.add_argument("--asgi", metavar="MODULE:APP", help="serve this ASGI application instead of a folder")
    parser.add_argument("--listen", default="http://127.0.0.1:8000", metavar="URL",
                        help="where to listen (default: http://127.0.0.1:8000; port 0 picks a free one)")
    parser.add_argument("--threads", type=int, default=8, metavar="N",
                        help="WSGI: threads running the application, per process (default: 8)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="WSGI, ASGI: processes sharing the port (default: 1)")
    parser.add_argument("--grace", type=float, default=10.0, metavar="SECONDS",
                        help="WSGI, ASGI: how long requests in flight may take to finish on SIGTERM (default: 10)")
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                        help="ASGI: the event loop (default: uvloop if installed)")
    parser.add_argument("--lifespan", choices=("auto", "on", "off"), default="auto",
                        help="ASGI: run the lifespan protocol (default: if the application supports it)")
    parser.add_argument("--root-path", default="", metavar="PATH",
                        help="ASGI: the prefix the application is mounted under behind a proxy")
    parser.add_argument("--timeout-header-read", type=float, default=30.0, metavar="SECONDS",
                        help="close a connection whose request head has not arrived whole by then, with 408 "
                             "(default: 30)")
    parser.add_argument("--timeout-keep-alive", type=float, default=5.0, metavar="SECONDS",
                        help="close a connection idle that long between requests (default: 5)")
    parser.add_argument("--quiet", action="store_true", help="log warnings only, and no access lines")
    parser.add_argument("--log-level", choices=tuple(LOG_LEVELS), default="info",
                        help="the least severe messages logged (default: info)")
    parser.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True,
                        help="log one line per response (default: on)")
    parser.add_argument("--ssl-certfile", metavar="FILE", help="serve HTTPS with this certificate (PEM; may hold "
                        "the key too)")
    parser.add_argument("--ssl-keyfile", metavar="FILE", help="and this private key (PEM)")
    parser.add_argument("--ssl-ca-certs", metavar="FILE",
                        help="require client certificates issued by these CAs (mutual TLS)")
    parser.add_argument("--version", action="version", version=f"pymongoose {__version__}")
    _defaults_from_environment(parser)
    args = parser.parse_args(argv)
    if args.quiet:
        args.access_log, args.log_level = False, "warning"
    if args.threads < 1 or args.workers < 1:
        parser.error("--threads and --workers must be at least 1")
    try:
        args.limits = HttpLimits(header_read_timeout=args.timeout_header_read,
                                 timeout_keep_alive=args.timeout_keep_alive)
    except ValueError as error:
        parser.error(str(error).replace("header_read_timeout", "--timeout-header-read")
                     .replace("timeout_keep_alive", "--timeout-keep-alive"))
    args.tls = _tls_from_files(parser, args)
    if args.workers > 1 and not (hasattr(os, "fork") and hasattr(socket, "SO_REUSEPORT")):
        parser.error("--workers N needs fork() and SO_REUSEPORT, which this platform lacks (Windows): "
                     "run one process, or several behind a proxy")
    return args


# --log-level's names, as uvicorn's ("trace": everything, below debug too).
LOG_LEVELS = {"critical": logging.CRITICAL, "error": logging.ERROR, "warning": logging.WARNING,
              "info": logging.INFO, "debug": logging.DEBUG, "trace": 5}
ENVIRONMENT_PREFIX = "PYMONGOOSE_SERVE_"  # apart from the build's PYMONGOOSE_TLS, PYMONGOOSE_IO...
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def _defaults_from_environment(parser: argparse.ArgumentParser) -> None:
    """Take each flag's default from PYMONGOOSE_SERVE_<FLAG> when it is set; a bad
    value is a usage error naming the variable."""
    for action in parser._actions:
        flags = [flag for flag in action.option_strings if flag.startswith("--") and not flag.startswith("--no-")]
        if not flags or action.dest in ("help", "version"):
            continue
        variable = ENVIRONMENT_PREFIX + flags[0][2:].replace("-", "_").upper()
        value = os.environ.get(variable)
        if value is None:
            continue
        if action.nargs == 0:  # a switch
            if value.strip().lower() not in _TRUE + _FALSE:
                parser.error(f"{variable}={value!r}: say 1 or 0 (true/false, yes/no)")
            action.default = value.strip().lower() in _TRUE
        elif action.choices is not None and value not in action.choices:
            parser.error(f"{variable}={value!r}: choose from {', '.join(map(str, action.choices))}")
        else:
            try:
                action.default = value if action.type is None else action.type(value)  # type: ignore[operator]
            except ValueError:
                parser.error(f"{variable}={value!r}: not a valid {flags[0]}")


def _tls_from_files(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Optional[TlsOpts]:
    """The TLS options the --ssl-* flags name, read now (a missing file is a usage
    error); the listen URL becomes https://. Their contents are checked when the
    server listens (exit status 1, naming what is wrong)."""
    if not (args.ssl_certfile or args.ssl_keyfile or args.ssl_ca_certs):
        return None
    if not args.ssl_certfile:
        parser.error("--ssl-keyfile and --ssl-ca-certs need --ssl-certfile")
    try:
        tls = TlsOpts(cert=Path(args.ssl_certfile), key=Path(args.ssl_keyfile) if args.ssl_keyfile else None,
                      ca=Path(args.ssl_ca_certs) if args.ssl_ca_certs else None)
    except OSError as error:
        parser.error(f"cannot read {error.filename}: {error.strerror}")
    scheme, separator, rest = args.listen.partition("://")
    if separator and scheme.lower() == "http":
        args.listen = f"https://{rest}"
    return tls


def main(argv: Optional[List[str]] = None) -> int:
    """Run the server until interrupted; returns the exit status."""
    args = _parse(argv)
    logging.basicConfig(level=LOG_LEVELS[args.log_level], format="%(message)s")
    if args.wsgi:
        return _serve_wsgi(args)
    if args.asgi:
        return _serve_asgi(args)
    return _serve_folder(args)


def _serve_folder(args: argparse.Namespace) -> int:
    root = os.path.abspath(args.root)
    if not os.path.isdir(root):
        print(f"error: --root {args.root!r} is not a folder", file=sys.stderr)
        return 2
    access_log = args.access_log

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            if access_log:
                logger.info("%s %s %s", conn.remote_addr.ip, data.method, data.uri)
            conn.serve_dir(data, root_dir=root)

    with Manager(handler) as manager:
        try:
            listener = manager.listen(args.listen, http=True, limits=args.limits, tls=args.tls)
        except (ListenError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(banner(f"Serving {root}", args.listen, listener), flush=True)
        manager.run(1000)  # until Ctrl-C or a service manager's SIGTERM
        print("Stopped.", flush=True)
    return 0


def _fixed_port(url: str) -> str:
    """``url`` with port 0 replaced by a free port: every worker process must listen
    on the same one. The port stays reserved by a socket bound with SO_REUSEPORT,
    kept open (never listening) while the workers run."""
    parts = urlsplit(url)
    if parts.port != 0:
        return url
    family = socket.AF_INET6 if ":" in (parts.hostname or "") else socket.AF_INET
    reserve = socket.socket(family, socket.SOCK_STREAM)
    reserve.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reserve.bind((parts.hostname or "127.0.0.1", 0))
    _fixed_port.reserved = reserve  # type: ignore[attr-defined]
    host = f"[{parts.hostname}]" if family == socket.AF_INET6 else parts.hostname
    return urlunsplit(parts._replace(netloc=f"{host}:{reserve.getsockname()[1]}"))


def _serve_wsgi(args: argparse.Namespace) -> int:
    from .wsgi import WSGIServer

    def process(app: Callable[..., Any], url: str) -> Callable[[], int]:
        def one_process() -> int:
            server = WSGIServer(app, workers=args.threads, multiprocess=args.workers > 1, access_log=args.access_log,
                                **_timeouts(args))
            try:
                listener = server.listen(url, reuse_port=args.workers > 1, tls=args.tls)
            except (ListenError, ValueError) as error:
                print(f"error: {error}", file=sys.stderr)
                server.close()
                return 1
            if not os.environ.get("PYMONGOOSE_WORKER"):
                print(banner(f"Serving {args.wsgi}", url, listener, f"{args.threads} threads"), flush=True)
            server.run(grace=args.grace)
            return 0
        return one_process

    return _serve_app(args, args.wsgi, process, f" x {args.threads} threads")


def _serve_asgi(args: argparse.Namespace) -> int:
    from .asgi import LifespanError, run_loop, serve_async

    def process(app: Callable[..., Any], url: str) -> Callable[[], int]:
        def one_process() -> int:
            try:
                run_loop(serve_async(app, url, grace=args.grace, reuse_port=args.workers > 1, tls=args.tls,
                                     quiet=bool(os.environ.get("PYMONGOOSE_WORKER")), lifespan=args.lifespan,
                                     root_path=args.root_path, access_log=args.access_log, **_timeouts(args)),
                         args.loop)
            except LifespanError as error:
                print(f"error: {error}", file=sys.stderr)
                return 3
            except (ListenError, ValueError) as error:
                print(f"error: {error}", file=sys.stderr)
                return 1
            return 0
        return one_process

    return _serve_app(args, args.asgi, process, "")


def _timeouts(args: argparse.Namespace) -> Dict[str, Any]:
    return {"header_read_timeout": args.timeout_header_read, "timeout_keep_alive": args.timeout_keep_alive}


def _serve_app(args: argparse.Namespace, spec: str, process: Callable[[Callable[..., Any], str], Callable[[], int]],
               per_process: str) -> int:
    """Load the application named ``spec``, then run ``process(app, url)`` in this
    process, or in ``--workers`` processes sharing one port."""
    try:
        app = load_app(spec)
    except Exception as error:  # any import failure is the user's to see
        print(f"error: cannot load {spec}: {error}", file=sys.stderr)
        return 2
    url = _fixed_port(args.listen) if args.workers > 1 else args.listen
    one_process = process(app, url)
    if args.workers == 1:
        return one_process()
    print(f"Serving {spec} on {url} ({args.workers} processes{per_process}; Ctrl-C to stop)", flush=True)
    return _supervise(args.workers, one_process)


def _supervise(count: int, run: Callable[[], int]) -> int:
    """Fork ``count`` worker processes running ``run``; pass SIGINT/SIGTERM on to
    them, restart one that dies unasked, and return once all have exited."""
    stopping = False
    children: Dict[int, bool] = {}
    supervisor = os.getpid()

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            os.environ["PYMONGOOSE_WORKER"] = "1"
            code = 1
            try:
                _stop_when_orphaned(supervisor)
                code = run()
            finally:
                os._exit(code)
        children[pid] = True

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    for _ in range(count):
        spawn()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    while children:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:  # pragma: no cover (PEP 475 retries)
            continue
        children.pop(pid, None)
        code = os.waitstatus_to_exitcode(wait_status) if hasattr(os, "waitstatus_to_exitcode") else wait_status
        if not stopping and code in _STARTUP_FAILURES:  # another would fail alike
            logger.error("worker %d could not start (exit status %s); stopping", pid, code)
            stop(signal.SIGTERM, None)
            status = code
        elif not stopping:
            logger.warning("worker %d exited (%s); starting another", pid, code)
            spawn()
        elif code != 0:
            status = status or 1
    return status


def _stop_when_orphaned(supervisor: int) -> None:
    """Have this worker stop gracefully (SIGTERM) when its supervisor dies, even by
    SIGKILL: a worker left behind would keep serving the port. Linux's kernel does it
    (PR_SET_PDEATHSIG); elsewhere a thread checks the parent once a second."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError, TypeError):  # not Linux
        _watch_parent(supervisor, 1.0)
        return
    if os.getppid() != supervisor:  # it died before the call above
        os.kill(os.getpid(), signal.SIGTERM)


def _watch_parent(supervisor: int, interval: float) -> None:
    """SIGTERM this process once its parent is no longer ``supervisor``."""
    def watch() -> None:
        while os.getppid() == supervisor:
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="pymongoose-orphan-watch", daemon=True).start()


# Exit statuses of a worker that could not start: listening failed (1), the
# application could not be loaded (2), its lifespan startup failed (3).
_STARTUP_FAILURES = (1, 2, 3)


if __name__ == "__main__":
    sys.exit(main())
