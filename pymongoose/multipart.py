"""Parse ``multipart/form-data`` bodies (HTML form uploads).

>>> body = (b"--x\\r\\nContent-Disposition: form-data; name=\\"a\\"\\r\\n\\r\\n1\\r\\n"
...         b"--x--\\r\\n")
>>> offset, part = http_parse_multipart(body)
>>> part["name"], part["body"]
('a', b'1')
>>> http_parse_multipart(body, offset)
(0, None)
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, Optional, Tuple

from ._args import int_arg
from ._binding import ffi, lib
from ._text import BytesLike, decode, from_mg_str, to_bytes

__all__ = ["http_parse_multipart", "iter_multipart"]

Part = Dict[str, Any]


def http_parse_multipart(body: BytesLike, offset: int = 0) -> Tuple[int, Optional[Part]]:
    """Parse the part of ``body`` starting at ``offset``.

    Returns ``(next_offset, part)``, where part is ``{"name": str, "filename": str,
    "body": bytes}``; ``(0, None)`` when there are no more parts.
    """
    data = to_bytes(body, "body")
    int_arg(offset, "offset", 0, len(data))
    part = ffi.new("struct mg_http_part *")
    with ffi.from_buffer(data) as buf:
        next_offset = lib.mg_http_next_multipart((buf, len(data)), offset, part)
        if next_offset == 0:
            return 0, None
        return int(next_offset), {
            "name": decode(from_mg_str(part.name)),
            "filename": decode(from_mg_str(part.filename)),
            "body": from_mg_str(part.body),
        }


def iter_multipart(body: BytesLike) -> Iterator[Part]:
    """Yield every part of a multipart body.

    >>> [p["name"] for p in iter_multipart(b"--x\\r\\nContent-Disposition: form-data; "
    ...                                     b"name=\\"f\\"\\r\\n\\r\\nv\\r\\n--x--\\r\\n")]
    ['f']
    """
    data = to_bytes(body, "body")
    offset = 0
    while True:
        offset, part = http_parse_multipart(data, offset)
        if part is None:
            return
        yield part
