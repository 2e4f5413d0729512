"""Read values out of JSON text by path, with Mongoose's parser, without building
Python objects for the whole document.

Paths start at ``$``: ``$.key``, ``$.list[0].name``.

>>> json_get_num('{"a": {"b": [1, 2.5]}}', "$.a.b[1]")
2.5
>>> json_get_str('{"name": "caf\\\\u00e9"}', "$.name")
'café'
>>> json_get('{"a": [1, 2]}', "$.a")
'[1, 2]'
"""

from __future__ import annotations

import json as _json
from typing import Optional, Union

from ._args import int_arg, keyword_aliases
from ._binding import ffi, lib
from ._text import to_bytes, to_cstr

__all__ = ["json_get", "json_get_num", "json_get_bool", "json_get_long", "json_get_str"]

JsonText = Union[str, bytes]


def _call(json: JsonText, path: str, function, *args):  # type: ignore[no-untyped-def]
    data = to_bytes(json, "json")
    raw_path = to_cstr(path, "path")
    if not raw_path.startswith(b"$"):
        raise ValueError(f"a JSON path starts with '$', not {path!r}")
    with ffi.from_buffer(data) as buf:
        return function((buf, len(data)), raw_path, *args), data


@keyword_aliases(data="json")  # the Cython bindings' name
def json_get(json: JsonText, path: str) -> Optional[str]:
    """Return the raw JSON text of the value at ``path``, or None if absent or the
    document is invalid."""
    toklen = ffi.new("int *")
    offset, data = _call(json, path, lib.mg_json_get, toklen)
    if offset < 0:
        return None
    token: bytes = data[offset:offset + toklen[0]]
    return token.decode("utf-8", "replace")


@keyword_aliases(data="json")  # the Cython bindings' name
def json_get_num(json: JsonText, path: str, default: Optional[float] = None) -> Optional[float]:
    """Return the number at ``path`` as a float, or ``default`` if it is absent or
    not a number.

    >>> json_get_num('{"a": "x"}', "$.a", default=0.0)
    0.0
    """
    value = ffi.new("double *")
    found, _ = _call(json, path, lib.mg_json_get_num, value)
    return float(value[0]) if found else default


@keyword_aliases(data="json")  # the Cython bindings' name
def json_get_bool(json: JsonText, path: str, default: Optional[bool] = None) -> Optional[bool]:
    """Return the boolean at ``path``, or ``default`` if it is absent or not a boolean."""
    value = ffi.new("bool *")
    found, _ = _call(json, path, lib.mg_json_get_bool, value)
    return bool(value[0]) if found else default


@keyword_aliases(data="json")  # the Cython bindings' name
def json_get_long(json: JsonText, path: str, default: int = 0) -> int:
    """Return the number at ``path`` as an int (truncated), or ``default``."""
    int_arg(default, "default")
    if json_get_num(json, path) is None:
        return default
    value, _ = _call(json, path, lib.mg_json_get_long, 0)
    return int(value)


@keyword_aliases(data="json")  # the Cython bindings' name
def json_get_str(json: JsonText, path: str) -> Optional[str]:
    """Return the string at ``path`` with its escapes decoded (``\\uXXXX`` and
    surrogate pairs included), or None if absent or not a string."""
    token = json_get(json, path)
    if token is None or not token.startswith('"'):
        return None
    try:
        value = _json.loads(token)
    except ValueError:
        return None
    return value if isinstance(value, str) else None
