"""A directive that shows ``python -m pymongoose --help`` as the program prints it,
so the command line's reference can never fall behind its flags."""

from typing import List

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


class CommandLineHelp(SphinxDirective):
    """``{command-line-help}``: the argument parser's help text, in a literal block."""

    def run(self) -> List[nodes.Node]:
        from pymongoose.__main__ import _parser

        text = _parser().format_help()
        return [nodes.literal_block(text, text, language="text")]


def setup(app: Sphinx) -> dict:
    app.add_directive("command-line-help", CommandLineHelp)
    return {"parallel_read_safe": True}
