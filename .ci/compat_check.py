"""Check the "same" rows of docs/compatibility.md against cymongoose 0.2.5.

Run it in a virtualenv that has both this package and cymongoose 0.2.5:

    python .ci/compat_check.py

It checks that every public name of cymongoose (the package, ``aio``, ``wsgi``,
``asgi``) exists here, and that every parameter of cymongoose's functions and
methods is accepted here under the same name, at the same position when it may be
given by position. cymongoose's compiled module exposes no signatures, so those
come from its own stub, ``_mongoose.pyi``; the pure-Python modules are inspected.
Differences listed in ``INTENDED`` (each with its reason) are reported, not
counted. Exits 1 if anything else differs.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

# Param: (name, may be given by position)
Param = Tuple[str, bool]

# cymongoose's name -> why ours differs (docs/compatibility.md, "Intentional
# differences"); empty while every signature matches.
INTENDED: Dict[str, str] = {}


def stub_signatures(stub: Path) -> Dict[str, List[Param]]:
    """Each function and method of a .pyi stub: its parameters, less self."""
    tree = ast.parse(stub.read_text(encoding="utf-8"))
    found: Dict[str, List[Param]] = {}

    def params(node: ast.FunctionDef) -> List[Param]:
        args = node.args
        positional = [(a.arg, True) for a in args.posonlyargs + args.args]
        return [p for p in positional if p[0] not in ("self", "cls")] + [(a.arg, False) for a in args.kwonlyargs]

    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            found[node.name] = params(node)
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and (not item.name.startswith("_") or item.name == "__init__"):
                    found[f"{node.name}.{item.name}"] = params(item)
    return found


def module_signatures(module: Any) -> Dict[str, List[Param]]:
    """Each public function, class constructor and method of a Python module."""
    found: Dict[str, List[Param]] = {}
    for name in public_names(module):
        obj = getattr(module, name, None)
        if inspect.isfunction(obj) and obj.__module__.startswith("cymongoose"):
            found[name] = _params(obj)
        elif inspect.isclass(obj) and obj.__module__.startswith("cymongoose"):
            for attr, member in vars(obj).items():
                if inspect.isfunction(member) and (not attr.startswith("_") or attr == "__init__"):
                    found[f"{name}.{attr}"] = _params(member)
    return found


def _params(function: Any) -> List[Param]:
    result = []
    for p in inspect.signature(function).parameters.values():
        if p.name in ("self", "cls") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        result.append((p.name, p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)))
    return result


def public_names(module: Any) -> List[str]:
    """The module's ``__all__``, or else the classes and functions it defines (not
    what it imports)."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [name for name, obj in vars(module).items()
            if not name.startswith("_") and getattr(obj, "__module__", None) == module.__name__
            and (inspect.isclass(obj) or inspect.isfunction(obj))]


def resolve(root: Any, dotted: str) -> Optional[Any]:
    obj = root
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def accepts(ours: Any, theirs: List[Param]) -> Iterator[str]:
    """What of ``theirs`` a call to ``ours`` would not accept."""
    aliases: Dict[str, str] = getattr(ours, "__keyword_aliases__", {})
    try:
        signature = inspect.signature(ours)
    except (TypeError, ValueError):
        return
    params = [p for p in signature.parameters.values() if p.name not in ("self", "cls")]
    names = {p.name: i for i, p in enumerate(params)}
    any_keyword = any(p.kind == p.VAR_KEYWORD for p in params)
    by_position = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    for index, (name, positional) in enumerate(theirs):
        ours_name = aliases.get(name, name)
        if ours_name not in names and not any_keyword:
            yield f"no parameter {name!r}"
        elif positional and (names.get(ours_name) != index or params[index].kind not in by_position):
            yield f"{name!r} is not parameter {index + 1} here"


def main() -> int:
    import cymongoose


    theirs_root = Path(cymongoose.__file__).parent
    problems: List[str] = []
    checked = 0
    for sub in ("", ".aio", ".wsgi", ".asgi"):
        theirs = importlib.import_module("cymongoose" + sub)
        ours = importlib.import_module("pymongoose" + sub)
        for name in public_names(theirs):
            if inspect.ismodule(getattr(theirs, name, None)):
                continue
            if not hasattr(ours, name):
                problems.append(f"pymongoose{sub}: missing {name}")
        signatures = stub_signatures(theirs_root / "_mongoose.pyi") if sub == "" else module_signatures(theirs)
        for dotted, params in sorted(signatures.items()):
            target = resolve(ours, dotted)
            checked += 1
            if target is None:
                if dotted.split(".")[-1] != "__init__":
                    problems.append(f"pymongoose{sub}.{dotted}: missing")
                continue
            for problem in accepts(target, params):
                where = f"pymongoose{sub}.{dotted}"
                if dotted in INTENDED:
                    print(f"intended: {where}: {problem} ({INTENDED[dotted]})")
                else:
                    problems.append(f"{where}: {problem}")
    for problem in problems:
        print(problem)
    print(f"{checked} signatures of cymongoose {cymongoose.__version__} checked; {len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
