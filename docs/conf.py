"""Sphinx configuration of pymongoose's documentation site.

Build it (warnings are errors; ``-n`` makes every cross-reference that does not
resolve one):

    pip install -e '.[docs]'
    sphinx-build -W --keep-going -n docs build/docs

Why Sphinx and not MkDocs: the package's docstrings are reStructuredText with
Sphinx roles and field lists (``:class:``, ``:param:``), which autodoc renders and
checks as they are; the guides are Markdown, read by MyST.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

project = "pymongoose"
author = "the pymongoose authors"
copyright = "the pymongoose authors; Mongoose © Cesanta Software Limited"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "command_line_help",  # docs/_ext: the command line's --help, as it is
    "public_names",  # docs/_ext: every public name documented once, reachable by each name
]

source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "deploy", "_ext"]
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# Every unresolved reference is an error (-n -W): only what we cannot link to is
# listed here. The site is built without the network, so there is no intersphinx
# inventory of Python's own documentation: builtins and the standard library are
# shown as names.
nitpicky = True
nitpick_ignore_regex = [
    # Type aliases private to the package, shown in signatures by name.
    ("py:class", r"(pymongoose\.\w+\.)?(PemInput|Handler|LoopOwner|TimerOwner|ASGIApp|WSGIApp|Properties|BytesLike)"),
    # The types of ServerConfig's derived fields, internal to the servers.
    ("py:class", r"pymongoose\.servers\.(proxy\.ProxyTrust|accesslog\.AccessFormat)"),
    ("py:(class|obj|exc|func|mod|data|meth|attr)",
     r"(typing|collections\.abc|asyncio|logging|os|socket|ssl|pathlib|threading|types|enum|_io|io|array)(\..*)?"),
    ("py:(class|obj|exc)", r"(int|str|bytes|bytearray|memoryview|float|bool|object|dict|list|tuple|set|frozenset"
                           r"|type|callable|None|NoneType|Exception|BaseException|ValueError|TypeError|RuntimeError"
                           r"|OSError|KeyError|ConnectionError|TimeoutError|KeyboardInterrupt|SystemExit"
                           r"|Ellipsis|EllipsisType|function|PathLike)"),
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True

html_theme = "furo"
html_title = "pymongoose"
html_static_path: list = []
