"""The command line: serve a folder, a WSGI application or an ASGI application.

    python -m pymongoose [--root DIR] [--listen URL]
    python -m pymongoose --wsgi module:app [--listen URL] [--threads N] [--workers N]
    python -m pymongoose --asgi module:app [--listen URL] [--workers N] [--loop uvloop]

Defaults: the current folder, on http://127.0.0.1:8000 (``--uds PATH``: a Unix
domain socket; ``--fd N``: an inherited socket; systemd's ``LISTEN_FDS``: its
socket, unasked). ``--workers N`` runs N processes under a supervisor that owns the
listening sockets, replaces a worker that dies and reloads the application on
SIGHUP without dropping a connection (:mod:`pymongoose.servers.supervisor`); a
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
import random
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from . import MG_EV_HTTP_MSG, HttpLimits, ListenError, Manager, TlsOpts, __version__
from ._apps import load_app, read_env_file
from ._listen_socket import DEFAULT_BACKLOG, MAX_BACKLOG
from .servers import metrics, reloader
from .servers.accesslog import FIELDS, AccessFormat, asgi_access, wsgi_access
from .servers.listen import banner, listening_socket, local_url, systemd_socket
from .servers.metrics import Region, SharedCounters
from .servers.proxy import DEFAULT_FORWARDED_ALLOW_IPS, ProxyTrust
from .servers.supervisor import READY, REPLACE_ME, Notify, Place, Supervisor

logger = logging.getLogger("pymongoose.serve")


def _parse(argv: Optional[List[str]]) -> argparse.Namespace:
    """The command line's options, checked (a usage error exits with status 2)."""
    parser = _parser()
    _defaults_from_environment(parser)
    return _checked(parser, parser.parse_args(argv))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pymongoose",
        description="Serve a folder, a WSGI application or an ASGI application over HTTP with Mongoose.",
    )
    parser.add_argument("--root", default=".", help="folder to serve (default: the current one)")
    apps = parser.add_mutually_exclusive_group()
    apps.add_argument("--wsgi", metavar="MODULE:APP", help="serve this WSGI application instead of a folder")
    apps.add_argument("--asgi", metavar="MODULE:APP", help="serve this ASGI application instead of a folder")
    parser.add_argument("--factory", action="store_true",
                        help="WSGI, ASGI: MODULE:APP names a function that returns the application")
    parser.add_argument("--env-file", metavar="FILE",
                        help="WSGI, ASGI: set the NAME=value lines of this file in the environment (variables "
                             "already set win) before the application is loaded; each worker reads it as it starts")
    parser.add_argument("--listen", default="http://127.0.0.1:8000", metavar="URL",
                        help="where to listen (default: http://127.0.0.1:8000; port 0 picks a free one)")
    parser.add_argument("--threads", type=int, default=8, metavar="N",
                        help="WSGI: threads running the application, per process (default: 8)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="WSGI, ASGI: processes sharing the listening socket, under a supervisor that "
                             "replaces them and reloads on SIGHUP (default: one process, no supervisor)")
    parser.add_argument("--uds", metavar="PATH", help="listen on a Unix domain socket at PATH instead")
    parser.add_argument("--fd", type=int, metavar="N",
                        help="listen on this inherited socket instead (systemd's LISTEN_FDS is used unasked)")
    parser.add_argument("--reload", action="store_true",
                        help="WSGI, ASGI: reload the application when a .py file under --reload-dir changes, for "
                             "development (implies --workers 1 unless given)")
    parser.add_argument("--reload-dir", action="append", metavar="DIR",
                        help="a folder --reload watches (may be repeated; default: the current one)")
    parser.add_argument("--metrics", metavar="URL",
                        help="WSGI, ASGI: serve Prometheus metrics of all the workers at this http://HOST:PORT/PATH "
                             "(implies --workers 1 unless given; default: none)")
    parser.add_argument("--limit-concurrency", type=int, metavar="N",
                        help="WSGI, ASGI: answer 503 to a request that arrives while N are being handled, per "
                             "process (default: no limit)")
    parser.add_argument("--max-requests", type=int, default=0, metavar="N",
                        help="WSGI, ASGI: replace a worker once it has answered about N requests, its replacement "
                             "serving first (implies --workers 1 unless given; default: never)")
    parser.add_argument("--max-requests-jitter", type=int, default=0, metavar="N",
                        help="add 0 to N to each worker's --max-requests, so that they are not all replaced at once")
    parser.add_argument("--backlog", type=int, default=DEFAULT_BACKLOG, metavar="N",
                        help=f"connections that may wait to be accepted (default: {DEFAULT_BACKLOG})")
    parser.add_argument("--grace", type=float, default=10.0, metavar="SECONDS",
                        help="WSGI, ASGI: how long requests in flight may take to finish on SIGTERM (default: 10)")
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                        help="ASGI: the event loop (default: uvloop if installed)")
    parser.add_argument("--lifespan", choices=("auto", "on", "off"), default="auto",
                        help="ASGI: run the lifespan protocol (default: if the application supports it)")
    parser.add_argument("--root-path", default="", metavar="PATH",
                        help="WSGI, ASGI: the prefix the application is mounted under behind a proxy "
                             "(WSGI: SCRIPT_NAME)")
    parser.add_argument("--ws-max-size", type=int, metavar="BYTES",
                        help="ASGI: the largest WebSocket message (close 1009 beyond; default: 16 MiB)")
    parser.add_argument("--ws-ping-interval", type=float, metavar="SECONDS",
                        help="ASGI: ping each WebSocket client this often (default: never)")
    parser.add_argument("--ws-ping-timeout", type=float, metavar="SECONDS",
                        help="ASGI: close (1011) a WebSocket whose client has not answered a ping this long "
                             "(default: the interval)")
    parser.add_argument("--timeout-header-read", type=float, default=30.0, metavar="SECONDS",
                        help="close a connection whose request head has not arrived whole by then, with 408 "
                             "(default: 30)")
    parser.add_argument("--timeout-keep-alive", type=float, default=5.0, metavar="SECONDS",
                        help="close a connection idle that long between requests (default: 5)")
    parser.add_argument("--proxy-headers", action=argparse.BooleanOptionalAction, default=False,
                        help="WSGI, ASGI: take the client's address and scheme from Forwarded or X-Forwarded-For "
                             "and X-Forwarded-Proto, sent by a proxy at --forwarded-allow-ips (default: off)")
    parser.add_argument("--forwarded-allow-ips", default=os.environ.get("FORWARDED_ALLOW_IPS",
                                                                        DEFAULT_FORWARDED_ALLOW_IPS),
                        metavar="ADDRESSES", help="the proxies trusted: IP addresses and networks, comma-separated, "
                        "or * (default: $FORWARDED_ALLOW_IPS, else 127.0.0.1,::1; a Unix socket's peer always)")
    parser.add_argument("--quiet", action="store_true", help="log warnings only, and no access lines")
    parser.add_argument("--log-level", choices=tuple(LOG_LEVELS), default="info",
                        help="the least severe messages logged (default: info)")
    parser.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True,
                        help="log one line per response (default: on)")
    parser.add_argument("--access-log-format", metavar="FORMAT",
                        help="WSGI, ASGI: the access line, a str.format string over: " + ", ".join(sorted(FIELDS))
                        + ' (default: \'{client} - "{request}" {status} {bytes} {duration_ms:.1f}ms\')')
    parser.add_argument("--access-log-file", metavar="FILE",
                        help="WSGI, ASGI: write the access lines to FILE (appended; - for standard output) "
                             "instead of the log (standard error)")
    parser.add_argument("--ssl-certfile", metavar="FILE", help="serve HTTPS with this certificate (PEM; may hold "
                        "the key too)")
    parser.add_argument("--ssl-keyfile", metavar="FILE", help="and this private key (PEM)")
    parser.add_argument("--ssl-ca-certs", metavar="FILE",
                        help="require client certificates issued by these CAs (mutual TLS)")
    parser.add_argument("--version", action="version", version=f"pymongoose {__version__}")
    return parser


def _checked(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """``args`` checked together, and completed: the defaults that depend on other
    flags, systemd's socket, the TLS files' contents."""
    if args.quiet:
        args.access_log, args.log_level = False, "warning"
    if args.threads < 1 or (args.workers is not None and args.workers < 1):
        parser.error("--threads and --workers must be at least 1")
    if args.uds is not None and args.fd is not None:
        parser.error("--uds and --fd: give one")
    if not 1 <= args.backlog <= MAX_BACKLOG:
        parser.error(f"--backlog must be from 1 to {MAX_BACKLOG}")
    if args.env_file is not None:
        try:
            read_env_file(args.env_file)
        except OSError as error:
            parser.error(f"--env-file: cannot read {args.env_file}: {error.strerror}")
        except ValueError as error:
            parser.error(f"--env-file: {error}")
    try:
        ProxyTrust(args.forwarded_allow_ips)
    except ValueError as error:
        parser.error(str(error).replace("forwarded_allow_ips", "--forwarded-allow-ips"))
    if args.access_log_format is not None:
        try:
            AccessFormat(args.access_log_format)
        except ValueError as error:
            parser.error(f"--access-log-format: {error}")
    websocket_flags = [flag for flag, value in (("--ws-max-size", args.ws_max_size),
                                                ("--ws-ping-interval", args.ws_ping_interval),
                                                ("--ws-ping-timeout", args.ws_ping_timeout)) if value is not None]
    if websocket_flags and not args.asgi:
        parser.error(f"{', '.join(websocket_flags)}: WebSockets are served by --asgi only")
    if args.ws_ping_timeout is not None and args.ws_ping_interval is None:
        parser.error("--ws-ping-timeout needs --ws-ping-interval")
    for flag, value in (("--ws-ping-interval", args.ws_ping_interval), ("--ws-ping-timeout", args.ws_ping_timeout),
                        ("--ws-max-size", args.ws_max_size)):
        if value is not None and value <= 0:
            parser.error(f"{flag} must be above 0")
    if args.limit_concurrency is not None and args.limit_concurrency < 1:
        parser.error("--limit-concurrency must be at least 1")
    if args.max_requests < 0 or args.max_requests_jitter < 0:
        parser.error("--max-requests and --max-requests-jitter must be at least 0")
    if args.max_requests_jitter and not args.max_requests:
        parser.error("--max-requests-jitter needs --max-requests")
    if args.reload_dir and not args.reload:
        parser.error("--reload-dir needs --reload")
    for folder in args.reload_dir or ():
        if not os.path.isdir(folder):
            parser.error(f"--reload-dir {folder!r} is not a folder")
    if args.metrics is not None:
        try:
            metrics.check_url(args.metrics)
        except ValueError as error:
            parser.error(str(error))
    if (args.max_requests or args.reload or args.metrics) and args.workers is None:
        args.workers = 1  # the supervisor replaces workers
    if args.fd is None and args.uds is None:
        args.fd = systemd_socket()
    try:
        args.limits = HttpLimits(header_read_timeout=args.timeout_header_read,
                                 timeout_keep_alive=args.timeout_keep_alive)
    except ValueError as error:
        parser.error(str(error).replace("header_read_timeout", "--timeout-header-read")
                     .replace("timeout_keep_alive", "--timeout-keep-alive"))
    args.tls = _tls_from_files(parser, args)
    if args.workers is not None and not hasattr(os, "fork"):
        parser.error("--workers needs fork(), which this platform lacks (Windows): "
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
        tls = _read_tls(args)
    except OSError as error:
        parser.error(f"cannot read {error.filename}: {error.strerror}")
    scheme, separator, rest = args.listen.partition("://")
    if separator and scheme.lower() == "http":
        args.listen = f"https://{rest}"
    return tls


def _access_lines_to(path: str) -> None:
    """Send the app servers' access lines to ``path`` ("-": standard output), not the log."""
    handler = logging.StreamHandler(sys.stdout) if path == "-" else logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    for logger_of_server in (wsgi_access, asgi_access):
        logger_of_server.addHandler(handler)
        logger_of_server.propagate = False


def _read_tls(args: argparse.Namespace) -> Optional[TlsOpts]:
    """The --ssl-* files' contents, read now (each worker reads them as it starts)."""
    if not args.ssl_certfile:
        return None
    return TlsOpts(cert=Path(args.ssl_certfile), key=Path(args.ssl_keyfile) if args.ssl_keyfile else None,
                   ca=Path(args.ssl_ca_certs) if args.ssl_ca_certs else None)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the server until interrupted; returns the exit status."""
    args = _parse(argv)
    logging.basicConfig(level=LOG_LEVELS[args.log_level], format="%(message)s")
    if args.access_log_file is not None:
        try:
            _access_lines_to(args.access_log_file)
        except OSError as error:
            print(f"error: --access-log-file: cannot open {args.access_log_file}: {error.strerror}", file=sys.stderr)
            return 2
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
            listener = manager.listen(args.listen, http=True, limits=args.limits, tls=args.tls, **_where(args))
        except (ListenError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(banner(f"Serving {root}", args.listen, listener, uds=args.uds), flush=True)
        manager.run(1000)  # until Ctrl-C or a service manager's SIGTERM
        print("Stopped.", flush=True)
    return 0


def _where(args: argparse.Namespace) -> Dict[str, Any]:
    """The listen options of one process serving alone."""
    return {"uds": args.uds, "fd": args.fd, "backlog": args.backlog}


def _serve_wsgi(args: argparse.Namespace) -> int:
    from .wsgi import WSGIServer

    def work(app: Callable[..., Any], tls: Optional[TlsOpts], where: Dict[str, Any], notify: Notify,
             metrics: Optional[Region]) -> int:
        server = WSGIServer(app, workers=args.threads, multiprocess=args.workers is not None,
                            access_log=args.access_log, root_path=args.root_path, **_server_options(args))
        server.metrics = metrics
        try:
            listener = server.listen(args.listen, tls=tls, **where)
        except (ListenError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            server.close()
            return 1
        if args.workers is None:
            print(banner(f"Serving {args.wsgi}", args.listen, listener, f"{args.threads} threads", uds=args.uds),
                  flush=True)
        notify(READY)
        tick = _ticker(args, server, notify)
        if tick is not None:
            server.manager.timer_add(int(TICK * 1000), tick, repeat=True)
        server.run(grace=args.grace)
        return 0

    return _serve_app(args, args.wsgi, work, f" x {args.threads} threads")


def _serve_asgi(args: argparse.Namespace) -> int:
    import asyncio

    from .asgi import LifespanError, run_loop, serve_async

    def work(app: Callable[..., Any], tls: Optional[TlsOpts], where: Dict[str, Any], notify: Notify,
             metrics: Optional[Region]) -> int:
        try:
            websocket = {"ws_ping_interval": args.ws_ping_interval, "ws_ping_timeout": args.ws_ping_timeout}
            if args.ws_max_size is not None:
                websocket["max_message_size"] = args.ws_max_size
            run_loop(serve_async(app, args.listen, grace=args.grace, tls=tls, quiet=args.workers is not None,
                                 lifespan=args.lifespan, root_path=args.root_path, access_log=args.access_log,
                                 **websocket,
                                 ready=lambda server: ready(server, notify, metrics), **where,
                                 **_server_options(args)),
                     args.loop)
        except LifespanError as error:
            print(f"error: {error}", file=sys.stderr)
            return 3
        except (ListenError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        return 0

    def ready(server: Any, notify: Notify, metrics: Optional[Region]) -> None:
        server.metrics = metrics  # before the loop runs: no request has been read yet
        notify(READY)
        tick = _ticker(args, server, notify)
        if tick is not None:
            loop = asyncio.get_running_loop()

            def again() -> None:
                tick()
                loop.call_later(TICK, again)

            loop.call_later(TICK, again)

    return _serve_app(args, args.asgi, work, "")


# How often a worker compares the requests it has answered with --max-requests,
# and samples its gauges for --metrics.
TICK = 0.1


def _ticker(args: argparse.Namespace, server: Any, notify: Notify) -> Optional[Callable[[], None]]:
    """What a worker calls every TICK seconds (None: nothing to do): ask for its
    replacement, once, after its share of --max-requests; sample the gauges of
    --metrics (its connections and the requests in flight)."""
    limit = args.max_requests + random.randint(0, args.max_requests_jitter) if args.max_requests else None
    metrics: Optional[Region] = server.metrics
    if limit is None and metrics is None:
        return None
    asked = False

    def tick() -> None:
        nonlocal asked
        if limit is not None and not asked and server.requests_served >= limit:
            asked = True
            notify(REPLACE_ME)
        if metrics is not None:
            metrics.sample(sum(not conn.is_listening for conn in server.manager.connections), server.in_flight)

    return tick


def _server_options(args: argparse.Namespace) -> Dict[str, Any]:
    """The options both servers take, from their flags."""
    return {"header_read_timeout": args.timeout_header_read, "timeout_keep_alive": args.timeout_keep_alive,
            "proxy_headers": args.proxy_headers, "forwarded_allow_ips": args.forwarded_allow_ips,
            "limit_concurrency": args.limit_concurrency, "access_log_format": args.access_log_format}


Work = Callable[[Callable[..., Any], Optional[TlsOpts], Dict[str, Any], Notify, Optional[Region]], int]


def _serve_app(args: argparse.Namespace, spec: str, work: Work, per_process: str) -> int:
    """Serve the application named ``spec`` with ``work(app, tls, where, notify, metrics)``:
    in this process, or (``--workers``) in worker processes that each load the
    application and read the TLS files themselves, so that SIGHUP's new workers run
    the application's code and certificates as they are now."""
    if args.workers is None:
        app = _load(args, spec)
        if app is None:
            return 2
        signal.signal(signal.SIGHUP, _hup_alone)
        return work(app, args.tls, _where(args), lambda _message: None, None)
    try:
        sockets = _worker_sockets(args)
    except (ListenError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    url = args.listen if args.uds is not None else local_url(args.listen, sockets[0])

    def one_worker(notify: Notify, place: Place) -> int:
        app = _load(args, spec)
        if app is None:
            return 2
        try:
            tls = _read_tls(args)
        except OSError as error:
            print(f"error: cannot read {error.filename}: {error.strerror}", file=sys.stderr)
            return 1
        released = False

        def notify_and_release(message: bytes) -> None:
            nonlocal released
            if message == READY and not released:
                # Its listener holds a duplicate of its own socket: the sockets it was
                # born with go, so that stopping it releases its hold on the port
                # (once the supervisor is gone too, a connection is refused rather
                # than left waiting on a socket nobody accepts from).
                released = True
                for fd in sockets:
                    os.close(fd)
            notify(message)

        return work(app, tls, {"fd": sockets[place.slot % len(sockets)]}, notify_and_release, place.metrics)

    counters, endpoint = None, None
    if args.metrics is not None:
        counters = SharedCounters(2 * args.workers + 2)  # a reload's overlap, replacements
        try:
            endpoint = metrics.serve(args.metrics, counters, lambda: len(supervisor.workers))
        except ListenError as error:
            print(f"error: --metrics: {error}", file=sys.stderr)
            return 1
    shown = f"{url.split('://', 1)[0]}+unix:{args.uds}" if args.uds is not None else url
    processes = f"{args.workers} process{'es' if args.workers > 1 else ''}"
    print(f"Serving {spec} on {shown} ({processes}{per_process}; Ctrl-C to stop, "
          f"SIGHUP to reload{'; metrics on ' + args.metrics if args.metrics else ''})",
          flush=True)
    watching = threading.Event()
    if args.reload:
        reloader.watch([os.path.abspath(folder) for folder in args.reload_dir or [os.getcwd()]], watching)
    supervisor = Supervisor(args.workers, one_worker, stop_timeout=args.grace + 5, counters=counters,
                            private=[endpoint.fileno()] if endpoint is not None else [])
    try:
        return supervisor.run()
    finally:
        watching.set()
        if endpoint is not None:
            endpoint.shutdown()
            endpoint.server_close()
        for fd in sockets:
            os.close(fd)


def _worker_sockets(args: argparse.Namespace) -> List[int]:
    """The listening sockets the workers take, opened here (see
    :mod:`pymongoose.servers.supervisor`): one per worker on Linux, bound to one
    port with SO_REUSEPORT (the kernel spreads connections evenly across them;
    elsewhere it does not), or the one socket --uds or --fd gives."""
    if args.uds is not None or args.fd is not None or not sys.platform.startswith("linux"):
        return [listening_socket(args.listen, args.backlog, uds=args.uds, fd=args.fd)]
    sockets = [listening_socket(args.listen, args.backlog, reuse_port=True)]
    try:
        port_fixed = local_url(args.listen, sockets[0])  # port 0: the one the first got
        for _ in range(args.workers - 1):
            sockets.append(listening_socket(port_fixed, args.backlog, reuse_port=True))
    except BaseException:
        for fd in sockets:
            os.close(fd)
        raise
    return sockets


def _load(args: argparse.Namespace, spec: str) -> Optional[Callable[..., Any]]:
    """The application, --env-file's variables set first; None once the reason is
    printed."""
    try:
        if args.env_file is not None:
            for name, value in read_env_file(args.env_file).items():
                os.environ.setdefault(name, value)
        return load_app(spec, factory=args.factory)
    except Exception as error:  # any import failure is the user's to see
        print(f"error: cannot load {spec}: {error}", file=sys.stderr)
        return None


def _hup_alone(_signum: int, _frame: Any) -> None:
    logger.warning("SIGHUP: reloading needs the supervisor (--workers N, 1 is fine); ignored")


if __name__ == "__main__":
    sys.exit(main())
