"""Every Python example in the README and the guides (docs/*.md) is known to work.

Each ```python block is preceded by a marker that says how it is tested:

- ``<!-- test: serves PATH -->``: a whole server program. It runs with its port
  (8000) replaced by a free one, must answer ``GET PATH`` with 200, and stops on
  Ctrl-C (SIGINT).
- ``<!-- test: client -->``: a whole client program. It runs against a local server
  (answering 200 to anything, on a free port put in place of 8000) and must exit 0.
- ``<!-- test: fragment -->``: part of a program (it needs an application, a broker,
  certificates...). It must compile.

A block without a marker fails the suite, so a new example is tested or says why not.
"""

from __future__ import annotations

import re
import signal
import textwrap
from pathlib import Path
from typing import Iterator, List, NamedTuple

import pytest
import requests

from pymongoose import MG_EV_HTTP_MSG, Manager

from support import DEFAULT_TIMEOUT, REPO, LoopThread, free_port, quietly, run_python, wait_for

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<language>[\w-]*)[ \t]*$")
_MARKER = re.compile(r"^\s*<!-- test: (?P<kind>serves|client|fragment)(?: (?P<arg>\S+))? -->\s*$")


class Example(NamedTuple):
    page: Path
    line: int  # of the opening fence, 1-based
    kind: str  # "serves", "client", "fragment" or "" (no marker)
    arg: str
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
        if fence["language"] in ("python", "py", "pycon"):
            previous = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
            marker = _MARKER.match(previous)
            code = textwrap.dedent("\n".join(lines[index + 1:end]))
            yield Example(page, index + 1, marker["kind"] if marker else "", (marker and marker["arg"]) or "", code)
        index = end + 1


EXAMPLES: List[Example] = [example for page in PAGES for example in python_blocks(page)]


def by_kind(kind: str) -> List[Example]:
    return [example for example in EXAMPLES if example.kind == kind]


def test_the_pages_have_examples_and_each_is_marked() -> None:
    assert len(EXAMPLES) >= 20 and by_kind("serves") and by_kind("client")
    unmarked = [example.name for example in EXAMPLES if not example.kind]
    assert not unmarked, f"Python blocks without a <!-- test: ... --> marker: {unmarked}"


@pytest.mark.parametrize("example", by_kind("fragment"), ids=lambda example: example.name)
def test_fragment_compiles(example: Example) -> None:
    compile(example.code, example.name, "exec")


def on_a_free_port(code: str) -> "tuple[str, int]":
    port = free_port()
    assert ":8000" in code, "the example's port is 8000"
    return code.replace(":8000", f":{port}"), port


@pytest.mark.parametrize("example", by_kind("serves"), ids=lambda example: example.name)
def test_server_example_serves(example: Example, tmp_path: Path) -> None:
    code, port = on_a_free_port(example.code)
    (tmp_path / "example.py").write_text(code)
    program = run_python(str(tmp_path / "example.py"), cwd=tmp_path)
    try:
        url = f"http://127.0.0.1:{port}{example.arg}"
        response = wait_for(lambda: quietly(lambda: requests.get(url, timeout=DEFAULT_TIMEOUT)), what=url)
        assert response.status_code == 200, response.text
    finally:
        program.send_signal(signal.SIGINT)  # Ctrl-C
        out, _ = program.communicate(timeout=DEFAULT_TIMEOUT * 2)
    # It stopped: cleanly, or by the KeyboardInterrupt a bare loop lets through.
    assert program.returncode == 0 or out.rstrip().endswith("KeyboardInterrupt"), out


@pytest.mark.parametrize("example", by_kind("client"), ids=lambda example: example.name)
def test_client_example_runs(example: Example, tmp_path: Path) -> None:
    def answer(conn, event, data):  # type: ignore[no-untyped-def]
        if event == MG_EV_HTTP_MSG:
            conn.reply(200, '{"hello": "world"}', {"Content-Type": "application/json"})

    code, port = on_a_free_port(example.code)
    (tmp_path / "example.py").write_text(code)
    with Manager(answer) as manager:
        manager.listen(f"http://127.0.0.1:{port}", http=True)
        loop = LoopThread(manager).start()
        try:
            program = run_python(str(tmp_path / "example.py"), cwd=tmp_path)
            out, _ = program.communicate(timeout=DEFAULT_TIMEOUT * 2)
        finally:
            loop.stop()
    assert program.returncode == 0, out
    assert out.startswith("200 ") and '"hello"' in out, out
