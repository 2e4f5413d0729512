"""Public names in the reference: each one documented once, each one reachable.

pymongoose exports most of its API twice: from its home module
(``pymongoose.manager.Manager``) and from the package (``pymongoose.Manager``),
which is what programs import and docstrings name. The reference documents each
object once, in its home module; this extension

- resolves a reference to any other name of the object (``pymongoose.Manager``,
  or a bare ``HttpMessage`` in a docstring of another module) to that entry;
- fails the build (a warning, an error under ``-W``) for every name a public
  module exports in ``__all__`` that no entry documents.
"""

import functools
import importlib
import pkgutil
from typing import Any, Dict, List, Optional, Tuple

from docutils import nodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging

logger = logging.getLogger(__name__)

def public_modules() -> List[str]:
    """The package and each module of it whose name has no underscore (``servers``
    is the servers' internals; ``pymongoose.wsgi`` and ``pymongoose.asgi`` are
    their public names). Each must define ``__all__``: that is what "public" means."""
    import pymongoose

    return ["pymongoose", *(f"pymongoose.{info.name}" for info in pkgutil.iter_modules(pymongoose.__path__)
                            if not info.name.startswith("_") and info.name != "servers")]


@functools.lru_cache(maxsize=None)
def exported() -> Dict[str, List[Tuple[str, Any]]]:
    """Each exported name -> the (module, object) pairs that export it."""
    names: Dict[str, List[Tuple[str, Any]]] = {}
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        if not hasattr(module, "__all__"):
            logger.warning(f"public module {module_name} defines no __all__")
            continue
        for name in module.__all__:
            if not name.startswith("__"):
                names.setdefault(name, []).append((module_name, getattr(module, name)))
    return names


def documented_as(objects: Dict[str, Any], name: str, pairs: List[Tuple[str, Any]]) -> Optional[str]:
    """The entry that documents ``name`` (exported as ``pairs``), if any."""
    candidates = [f"{module}.{name}" for module, _ in pairs]
    for _, obj in pairs:
        home, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        if isinstance(home, str) and isinstance(qualname, str):
            candidates.append(f"{home}.{qualname}")
    return next((candidate for candidate in candidates if candidate in objects), None)


def resolve_other_name(app: Sphinx, env: BuildEnvironment, node: pending_xref,
                       contnode: nodes.TextElement) -> Optional[nodes.Element]:
    if node.get("refdomain") != "py":
        return None
    # "Manager", "pymongoose.Manager", "Manager.listen", "pymongoose.Manager.listen"
    parts = node["reftarget"].split(".")
    if parts[0] == "pymongoose":
        parts = parts[1:]
    pairs = exported().get(parts[0]) if parts else None
    if not pairs:
        return None
    domain = env.get_domain("py")
    entry = documented_as(domain.objects, parts[0], pairs)  # type: ignore[attr-defined]
    if entry is None:
        return None
    target = ".".join([entry, *parts[1:]])
    return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], target, node, contnode)


def check_every_name_documented(app: Sphinx, env: BuildEnvironment) -> None:
    objects = env.get_domain("py").objects  # type: ignore[attr-defined]
    for name, pairs in sorted(exported().items()):
        if documented_as(objects, name, pairs) is None:
            modules = ", ".join(module for module, _ in pairs)
            logger.warning(f"public name {name!r} (exported by {modules}) has no entry in the reference")


def setup(app: Sphinx) -> Dict[str, Any]:
    app.connect("missing-reference", resolve_other_name)
    app.connect("env-check-consistency", check_every_name_documented)
    return {"parallel_read_safe": True}
