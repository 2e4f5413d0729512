"""Worker processes for ``python -m pymongoose --workers N``.

The supervisor opens the listening sockets and forks the workers that accept from
them; the sockets stay open in the supervisor for as long as it runs, so a worker
that stops (SIGHUP's reload, a replacement, a crash) takes no waiting connection
with it: they wait for the next worker on the same socket. (Were each worker to
open its own ``SO_REUSEPORT`` socket, as before, the connections queued on the
socket of one that stops would be reset.) On Linux there is one ``SO_REUSEPORT``
socket per worker place (*slot*), and the kernel spreads new connections evenly
across them; elsewhere, and with ``--uds`` or ``--fd``, all share one socket.

Each worker tells the supervisor, on a pipe of its own, when it serves (``R``) and
when it wants to be replaced (``M``, ``--max-requests``). The supervisor:

- starts one worker first and the rest once it serves, so that an application
  that cannot start says so once (its exit status is the supervisor's);
- on SIGHUP starts a new set of workers the same way, and stops the old ones
  (SIGTERM: they finish what they hold) only once all the new ones serve; a new
  set that cannot start is stopped and the old one goes on;
- replaces a worker that asks to be, stopping it once its replacement serves;
- replaces a worker that dies unasked;
- on SIGINT or SIGTERM stops every worker (one still starting, once it serves) and
  returns once all have exited; one that has not after ``stop_timeout``, it kills.
"""

from __future__ import annotations

import logging
import os
import selectors
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from .metrics import Region, SharedCounters

logger = logging.getLogger("pymongoose.serve")

READY = b"R"
REPLACE_ME = b"M"

# Exit statuses of a worker that could not start: listening failed (1), the
# application could not be loaded (2), its lifespan startup failed (3).
STARTUP_FAILURES = (1, 2, 3)
# How long before trying again to start a worker that could not (once others have).
RETRY_AFTER = 1.0

# The worker's side: called with READY or REPLACE_ME.
Notify = Callable[[bytes], None]


@dataclass
class _Worker:
    pid: int
    pipe: int  # the read end of its pipe
    generation: int
    slot: int  # which of the count places it fills (and which listening socket it takes)
    region: Optional[int] = None  # its counters for --metrics (metrics.SharedCounters)
    ready: bool = False
    stopping: bool = False
    replaces: Optional[int] = None  # the pid this one is to replace once it serves


class Place(NamedTuple):
    """Where a worker stands: ``slot`` (0 to count - 1), the place it fills (its
    replacements, and its successor after a reload, fill it too), and the counters
    it keeps for --metrics (None: no metrics)."""

    slot: int
    metrics: Optional[Region]


class Supervisor:
    """Run ``count`` copies of ``work(notify, place)`` in forked processes; see the
    module.

    ``work`` runs in each worker and returns its exit status; it calls
    ``notify(READY)`` once it serves. ``counters``: the shared memory each worker
    counts in for --metrics. ``private``: descriptors of the supervisor's own that
    a worker closes first.
    """

    def __init__(self, count: int, work: Callable[[Notify, Place], int], stop_timeout: float = 15.0,
                 counters: Optional[SharedCounters] = None, private: Sequence[int] = ()) -> None:
        self.count = count
        self.work = work
        self.counters = counters
        self.private = tuple(private)
        self.stop_timeout = stop_timeout  # from SIGTERM to SIGKILL, for a worker that does not stop
        self._kill_at: Optional[float] = None
        self.workers: Dict[int, _Worker] = {}
        self.generation = 0  # the set of workers serving (or starting, at first)
        self.pending: Optional[int] = None  # a reload's new set, while it starts
        self.stopping = False
        self.status = 0
        self._reload = False
        self._respawns: List[Tuple[float, _Worker]] = []  # (when, the worker to start again)
        self._selector = selectors.DefaultSelector()
        self._wake: Tuple[int, int] = (-1, -1)
        self._supervisor = os.getpid()

    # ---- the supervisor's loop -----------------------------------------------------

    def run(self) -> int:
        """Supervise until every worker has exited; return the exit status."""
        wake_read, wake_write = self._wake = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        self._selector.register(wake_read, selectors.EVENT_READ)
        previous = signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        handlers = {signal.SIGTERM: self._stop, signal.SIGINT: self._stop, signal.SIGHUP: self._hup,
                    signal.SIGCHLD: lambda *_: None}  # each wakes the loop
        saved = {number: signal.signal(number, handler) for number, handler in handlers.items()}
        try:
            self._spawn(self.generation, 0)
            while self.workers or (self._respawns and not self.stopping):
                for key, _ in self._selector.select(0.25 if self._respawns else 1.0):
                    if key.fd == wake_read:
                        _drain(wake_read)
                    else:
                        self._message(key.fd)
                self._reap()
                self._act()
        finally:
            signal.set_wakeup_fd(previous)
            for number, handler in saved.items():
                signal.signal(number, handler)
            self._selector.close()
            os.close(wake_read)
            os.close(wake_write)
        return self.status

    def _stop(self, _signum: int, _frame: object) -> None:
        self.stopping = True

    def _hup(self, _signum: int, _frame: object) -> None:
        self._reload = True

    def _act(self) -> None:
        if self.stopping:
            # A worker still starting is stopped once it serves (its server's own
            # handlers then stop it gracefully; a SIGTERM inside the application's
            # import or an event loop's start would leave a process half made), or
            # exits by itself if it cannot start. Past the deadline, SIGKILL.
            if self._kill_at is None:
                self._kill_at = time.monotonic() + self.stop_timeout
            for worker in self.workers.values():
                if worker.ready:
                    self._terminate(worker)
                elif time.monotonic() > self._kill_at:
                    logger.error("worker %d did not stop within %g s: killing it", worker.pid, self.stop_timeout)
                    _kill(worker.pid, signal.SIGKILL)
            return
        now = time.monotonic()
        for when, failed in [r for r in self._respawns if r[0] <= now]:
            self._respawns.remove((when, failed))
            if failed.replaces is None or failed.replaces in self.workers:
                self._spawn(failed.generation, failed.slot, replaces=failed.replaces)
        if self._reload and self.pending is None:  # one during a reload: another after it
            self._reload = False
            self.pending = self.generation + 1
            logger.info("SIGHUP: starting %d new worker(s)", self.count)
            self._spawn(self.pending, 0)
        starting = self.pending if self.pending is not None else self.generation
        members = [worker for worker in self.workers.values()
                   if worker.generation == starting and not worker.stopping and worker.replaces is None]
        if members and all(worker.ready for worker in members) and len(members) < self.count:
            filled = {worker.slot for worker in members} | {failed.slot for _, failed in self._respawns}
            for slot in range(self.count):  # the first serves: the rest
                if slot not in filled:
                    self._spawn(starting, slot)
        elif self.pending is not None and len(members) == self.count and all(worker.ready for worker in members):
            for worker in self.workers.values():
                if worker.generation != self.pending:
                    self._terminate(worker)
            logger.info("reloaded: %d new worker(s) serve; the old ones finish what they hold", self.count)
            self.generation, self.pending = self.pending, None

    def _message(self, pipe: int) -> None:
        worker = next((w for w in self.workers.values() if w.pipe == pipe), None)
        try:
            data = os.read(pipe, 64)
        except OSError:
            data = b""
        if worker is None:
            return
        if not data:  # the worker has gone; _reap hears why
            self._selector.unregister(pipe)
            return
        if READY in data and not worker.ready:
            worker.ready = True
            if self.stopping:
                self._terminate(worker)
            old = self.workers.get(worker.replaces) if worker.replaces is not None else None
            worker.replaces = None
            if old is not None:
                self._terminate(old)
        if REPLACE_ME in data and not worker.stopping and not self.stopping and \
                not any(w.replaces == worker.pid for w in self.workers.values()):
            logger.info("worker %d has served its --max-requests: starting its replacement", worker.pid)
            self._spawn(worker.generation, worker.slot, replaces=worker.pid)

    def _reap(self) -> None:
        while self.workers:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.workers.clear()
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            self._forget(worker)
            self._exited(worker, os.waitstatus_to_exitcode(wait_status))

    def _exited(self, worker: _Worker, code: int) -> None:
        if self.stopping:
            if code != 0:
                logger.warning("worker %d exited with status %s while stopping", worker.pid, code)
                self.status = self.status or 1
            return
        if worker.stopping:
            logger.info("worker %d stopped (exit status %s)", worker.pid, code)
            return
        if not worker.ready and code in STARTUP_FAILURES:
            if worker.generation == self.pending:  # a reload that cannot start: the old set goes on
                logger.error("reload failed: a new worker could not start (exit status %s); "
                             "the running workers go on", code)
                for other in self.workers.values():
                    if other.generation == self.pending:
                        self._terminate(other)
                self.pending = None
                return
            if worker.generation == self.generation and not any(w.ready for w in self.workers.values()):
                # The first start: another would fail alike.
                logger.error("worker %d could not start (exit status %s); stopping", worker.pid, code)
                self.status = code
                self.stopping = True
                return
            # The application worked before and does not start now (its files changed?):
            # try again in a while, not in a tight loop.
            logger.error("worker %d could not start (exit status %s); trying again in %g s",
                         worker.pid, code, RETRY_AFTER)
            self._respawns.append((time.monotonic() + RETRY_AFTER, worker))
            return
        successor = next((w for w in self.workers.values() if w.replaces == worker.pid), None)
        if successor is not None:  # its replacement is on the way already
            logger.warning("worker %d exited (%s); its replacement is starting", worker.pid, code)
            successor.replaces = None
            return
        logger.warning("worker %d exited (%s); starting another", worker.pid, code)
        self._spawn(worker.generation, worker.slot, replaces=worker.replaces)

    # ---- workers -------------------------------------------------------------------

    def _spawn(self, generation: int, slot: int, replaces: Optional[int] = None) -> None:
        region = self.counters.take() if self.counters is not None else None
        if self.counters is not None and region is None:
            logger.warning("--metrics: no counters left for a new worker; it is not counted")
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            metrics = self.counters.region(region) if self.counters is not None and region is not None else None
            os._exit(self._worker_main(write_end, Place(slot, metrics)))
        os.close(write_end)
        self.workers[pid] = _Worker(pid, read_end, generation, slot, region=region, replaces=replaces)
        self._selector.register(read_end, selectors.EVENT_READ)

    def _worker_main(self, pipe: int, place: Place) -> int:
        """In the forked worker: undo the supervisor's signal set-up, then work."""
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, _exit_quietly)  # until the server sets its own
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the supervisor's to act on
            self._selector.close()
            for fd in (*self._wake, *self.private, *(worker.pipe for worker in self.workers.values())):
                os.close(fd)
            os.environ["PYMONGOOSE_WORKER"] = "1"
            stop_when_orphaned(self._supervisor)
            lock = threading.Lock()

            def notify(message: bytes) -> None:
                with lock:
                    try:
                        os.write(pipe, message)
                    except OSError:  # the supervisor has gone: orphaned, stopping
                        pass

            code = self.work(notify, place)
        except SystemExit as leaving:
            code = leaving.code if isinstance(leaving.code, int) else 1
        except BaseException:  # the worker's last word before os._exit
            logger.exception("worker %d failed", os.getpid())
        return code

    def _terminate(self, worker: _Worker) -> None:
        if worker.stopping:
            return
        worker.stopping = True
        _kill(worker.pid, signal.SIGTERM)

    def _forget(self, worker: _Worker) -> None:
        try:
            self._selector.unregister(worker.pipe)
        except (KeyError, ValueError):
            pass
        os.close(worker.pipe)
        if self.counters is not None and worker.region is not None:
            self.counters.give_back(worker.region)


def _exit_quietly(_signum: int, _frame: object) -> None:
    # Asked to stop before serving: nothing to finish. Not SystemExit: raised inside
    # a callback from C, it would be reported there and the worker would go on.
    os._exit(0)


def _kill(pid: int, number: int) -> None:
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        pass


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def stop_when_orphaned(supervisor: int) -> None:
    """Have this worker stop gracefully (SIGTERM) when its supervisor dies, even by
    SIGKILL: a worker left behind would keep serving the port. Linux's kernel does it
    at once (PR_SET_PDEATHSIG); a thread also checks the parent once a second, for
    other systems and for emulators that do not pass the request on."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError, TypeError):  # not Linux
        pass
    watch_parent(supervisor, 1.0)


def watch_parent(supervisor: int, interval: float) -> None:
    """SIGTERM this process once its parent is no longer ``supervisor`` (and again
    every few intervals while it lives on: more SIGTERMs do not cut a graceful stop
    short)."""
    def watch() -> None:
        while os.getppid() == supervisor:
            time.sleep(interval)
        while True:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(interval * 5)

    threading.Thread(target=watch, name="pymongoose-orphan-watch", daemon=True).start()


__all__: List[str] = ["READY", "REPLACE_ME", "STARTUP_FAILURES", "Notify", "Place", "Supervisor",
                      "stop_when_orphaned"]
