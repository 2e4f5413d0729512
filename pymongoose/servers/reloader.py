"""``--reload``: reload the application when a Python file under a folder changes.

The supervisor reloads on SIGHUP (:mod:`.supervisor`); a watcher thread sends it
one when a ``.py`` file under the watched folders is added, changed or removed.
With the ``watchfiles`` package installed (``pip install pymongoose[reload]``) the
operating system says what changed; without it the folders are scanned twice a
second.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "app.py").write_text("x = 1")
>>> scan = PollingScan([str(folder)])
>>> scan.changed()
False
>>> _ = (folder / "more.py").write_text("y = 2")
>>> scan.changed()
True
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Dict, Iterable, List, Tuple

logger = logging.getLogger("pymongoose.serve")

POLL_INTERVAL = 0.5
# Folders never watched: they hold no application code, or too much of other code.
SKIPPED = frozenset({"__pycache__", "node_modules", "site-packages", ".git", ".hg", ".tox", ".venv", "venv",
                     ".mypy_cache", ".pytest_cache", ".ruff_cache", "build", "dist"})


class PollingScan:
    """The ``.py`` files under ``folders`` with their modification times, compared
    with the previous scan's."""

    def __init__(self, folders: Iterable[str]) -> None:
        self.folders = list(folders)
        self.seen = self._scan()

    def _scan(self) -> Dict[str, Tuple[int, int]]:
        found: Dict[str, Tuple[int, int]] = {}
        for folder in self.folders:
            for root, dirs, files in os.walk(folder):
                dirs[:] = [d for d in dirs if d not in SKIPPED and not d.startswith(".")]
                for name in files:
                    if name.endswith(".py"):
                        path = os.path.join(root, name)
                        try:
                            status = os.stat(path)
                        except OSError:  # removed meanwhile
                            continue
                        found[path] = (status.st_mtime_ns, status.st_size)
        return found

    def changed(self) -> bool:
        now = self._scan()
        changed, self.seen = now != self.seen, now
        return changed


def watch(folders: List[str], stop: threading.Event) -> threading.Thread:
    """Start the thread that SIGHUPs this process on each change, until ``stop``.

    The files are scanned here, before the thread starts: a change made while it
    imports watchfiles and sets up its watch is then seen, not lost."""
    scan = PollingScan(folders)
    thread = threading.Thread(target=_watch, args=(folders, stop, scan), name="pymongoose-reload", daemon=True)
    thread.start()
    return thread


def _watch(folders: List[str], stop: threading.Event, scan: PollingScan) -> None:
    try:
        import watchfiles
    except ImportError:
        logger.info("--reload: scanning %s every %g s (install watchfiles to be told instead)",
                    ", ".join(folders), POLL_INTERVAL)
        while not stop.wait(POLL_INTERVAL):
            if scan.changed():
                _reload()
        return
    logger.info("--reload: watching %s", ", ".join(folders))
    first = True
    # A first yield, a change or a second without any, means the watch is set up:
    # then what changed before it is in the scan.
    for changes in watchfiles.watch(*folders, watch_filter=watchfiles.PythonFilter(), stop_event=stop,
                                    raise_interrupt=False, yield_on_timeout=True, rust_timeout=1000):
        if changes or (first and scan.changed()):
            _reload()
        first = False


def _reload() -> None:
    logger.info("--reload: a Python file changed; reloading")
    os.kill(os.getpid(), signal.SIGHUP)
