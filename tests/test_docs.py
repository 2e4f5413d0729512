"""Every Python example in the README and the guides (docs/*.md) is known to work.

Each ```python block is preceded by a marker that says how it is tested:

- ``<!-- test: serves PATH shows TEXT -->``: a whole server program. It runs with
  its port (8000, or 8443 for HTTPS) replaced by a free one; ``GET PATH`` must be
  answered 200 with TEXT in the body; Ctrl-C (SIGINT) must stop it.
- ``<!-- test: runs prints TEXT -->``: a whole program that ends by itself. It must
  exit 0 having printed TEXT. Its port 8000 (8443) is a local server's, answering
  ``hello`` to any request; its port 1883 is a local mosquitto broker's.
- ``<!-- test: fragment -->``: part of a program, shown to make one point. It must
  compile.

Before ``shows``/``prints``, ``+NAME`` puts files beside the program: ``+pki`` a
CA (``ca.pem``) and a certificate for localhost and 127.0.0.1 (``server.pem``,
``server.key``), which also makes the local server HTTPS; ``+wsgi-app`` and
``+asgi-app`` a ``myapp.py`` whose ``app`` answers ``hello from myapp``.

A block without a marker fails the suite, so a new example is tested or says why not.
"""

from __future__ import annotations

import re
import shutil
import signal
import textwrap
from pathlib import Path
from typing import Iterator, List, NamedTuple, Optional, Tuple

import pytest
import requests

from pymongoose import MG_EV_HTTP_MSG, Manager, TlsOpts

from support import DEFAULT_TIMEOUT, REPO, LoopThread, Mosquitto, TestPKI, free_port, quietly, run_python, wait_for

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<language>[\w-]*)[ \t]*$")
_MARKER = re.compile(r"^\s*<!-- test: (?P<kind>serves|runs|fragment)(?: (?P<path>/\S*))?(?P<fixtures>(?: \+[\w-]+)*)"
                     r"(?: (?:shows|prints) (?P<text>.+?))? -->\s*$")

APPS = {
    "wsgi-app": "def app(environ, start_response):\n"
                "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
                "    return [b'hello from myapp']\n",
    "asgi-app": "async def app(scope, receive, send):\n"
                "    if scope['type'] == 'http':\n"
                "        await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
                "        await send({'type': 'http.response.body', 'body': b'hello from myapp'})\n",
}


class Example(NamedTuple):
    page: Path
    line: int  # of the opening fence, 1-based
    kind: str  # "serves", "runs", "fragment" or "" (no marker)
    path: str
    fixtures: Tuple[str, ...]
    text: str
    code: str

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def python_blocks(page: Path) -> Iterator[Example]:
    """The page's ```python blocks, with the marker above each (if any)."""
    lines = page.read_text(encoding="utf-8").split("\n")
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "```")
        if fence["language"] in ("python", "py"):
            previous = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
            marker = _MARKER.match(previous)
            code = textwrap.dedent("\n".join(lines[index + 1:end]))
            if marker is None:
                yield Example(page, index + 1, "", "", (), "", code)
            else:
                yield Example(page, index + 1, marker["kind"], marker["path"] or "",
                              tuple(marker["fixtures"].split()), marker["text"] or "", code)
        index = end + 1


EXAMPLES: List[Example] = [example for page in PAGES for example in python_blocks(page)]


def by_kind(kind: str) -> List[Example]:
    return [example for example in EXAMPLES if example.kind == kind]


def test_the_pages_have_examples_and_each_is_marked() -> None:
    assert len(EXAMPLES) >= 20 and by_kind("serves") and by_kind("runs")
    unmarked = [example.name for example in EXAMPLES if not example.kind]
    assert not unmarked, f"Python blocks without a <!-- test: ... --> marker: {unmarked}"
    untold = [example.name for example in EXAMPLES if example.kind != "fragment" and not example.text]
    assert not untold, f"examples that run but say nothing of what they should show: {untold}"


@pytest.mark.parametrize("example", by_kind("fragment"), ids=lambda example: example.name)
def test_fragment_compiles(example: Example) -> None:
    compile(example.code, example.name, "exec")


def prepare(example: Example, folder: Path, port: int, broker_port: Optional[int] = None) -> Path:
    """Write the program (its ports replaced) and its fixtures into ``folder``."""
    code = re.sub(r":(8000|8443)\b", f":{port}", example.code)
    if broker_port is not None:
        code = code.replace(":1883", f":{broker_port}")
    assert code != example.code, f"{example.name}: the example's port is 8000, 8443 or 1883 (MQTT)"
    for fixture in example.fixtures:
        if fixture == "+pki":
            pki = TestPKI(folder / "pki")
            cert, key = pki.issue("localhost")
            shutil.copy(cert, folder / "server.pem")
            shutil.copy(key, folder / "server.key")
            shutil.copy(pki.ca_cert, folder / "ca.pem")
        elif fixture[1:] in APPS:
            (folder / "myapp.py").write_text(APPS[fixture[1:]])
        else:
            raise AssertionError(f"{example.name}: unknown fixture {fixture}")
    program = folder / "example.py"
    program.write_text(code)
    return program


@pytest.mark.parametrize("example", by_kind("serves"), ids=lambda example: example.name)
def test_server_example_serves(example: Example, tmp_path: Path) -> None:
    port = free_port()
    program = run_python(str(prepare(example, tmp_path, port)), cwd=tmp_path)
    try:
        scheme = "https" if "https://" in example.code else "http"
        url = f"{scheme}://127.0.0.1:{port}{example.path}"
        verify = str(tmp_path / "ca.pem") if scheme == "https" else True
        response = wait_for(lambda: quietly(lambda: requests.get(url, timeout=DEFAULT_TIMEOUT, verify=verify)),
                            what=url)
        assert response.status_code == 200, response.text
        assert example.text in response.text, response.text
    finally:
        program.send_signal(signal.SIGINT)  # Ctrl-C
        out, _ = program.communicate(timeout=DEFAULT_TIMEOUT * 2)
    # It stopped: cleanly, or by the KeyboardInterrupt a bare loop lets through.
    assert program.returncode == 0 or out.rstrip().endswith("KeyboardInterrupt"), out


@pytest.mark.parametrize("example", by_kind("runs"), ids=lambda example: example.name)
def test_program_example_runs(example: Example, tmp_path: Path) -> None:
    def hello(conn, event, data):  # type: ignore[no-untyped-def]
        if event == MG_EV_HTTP_MSG:
            conn.reply(200, "hello")

    broker = Mosquitto(tmp_path) if ":1883" in example.code else None
    port = free_port()
    program_file = prepare(example, tmp_path, port, broker.port if broker else None)
    with Manager(hello) as manager:
        if ".listen(" not in example.code:  # a client: it needs a server to talk to
            tls = None
            if "+pki" in example.fixtures:
                tls = TlsOpts(cert=(tmp_path / "server.pem").read_text(), key=(tmp_path / "server.key").read_text())
            manager.listen(f"{'https' if tls else 'http'}://127.0.0.1:{port}", http=True, tls=tls)
        loop = LoopThread(manager).start()
        try:
            program = run_python(str(program_file), cwd=tmp_path)
            out, _ = program.communicate(timeout=DEFAULT_TIMEOUT * 2)
        finally:
            loop.stop()
            if broker is not None:
                broker.stop()
    assert program.returncode == 0, out
    assert example.text in out, out
