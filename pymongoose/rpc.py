"""JSON-RPC 2.0 dispatch, with cymongoose's names: :class:`Rpc` and :class:`RpcReq`.

Requests are read with Mongoose's JSON parser (as ``json_get`` does), methods are
Python callables, and every reply follows JSON-RPC 2.0: ``"jsonrpc": "2.0"``, the
request's ``id`` as it was sent, errors -32700 (parse error), -32600 (invalid
request), -32601 (method not found), -32602 (invalid params) and -32603 (internal
error, for a handler that raised or gave no answer); batches are answered with an
array; notifications (no ``id``) get no reply::

    rpc = Rpc()

    def add(req):
        req.ok(str(json_get_num(req.frame, "$.params[0]") + json_get_num(req.frame, "$.params[1]")))

    rpc.add("add", add)

    def handler(conn, event, data):
        if event == MG_EV_HTTP_MSG:
            answer = rpc.process(data.body_text)
            conn.reply(200, answer, {"Content-Type": "application/json"})

>>> rpc = Rpc()
>>> rpc.add("echo", lambda req: req.ok(json_get(req.frame, "$.params[0]")))
>>> rpc.process('{"jsonrpc": "2.0", "id": 7, "method": "echo", "params": ["hi"]}')
'{"jsonrpc":"2.0","id":7,"result":"hi"}'
"""

from __future__ import annotations

import json
import logging
from typing import Callable, Dict, List, Optional, Union

from ._args import int_arg
from .jsonpath import json_get

__all__ = ["Rpc", "RpcReq", "PARSE_ERROR", "INVALID_REQUEST", "METHOD_NOT_FOUND", "INVALID_PARAMS",
           "INTERNAL_ERROR"]

logger = logging.getLogger("pymongoose")

#: JSON-RPC error code: the request is not valid JSON.
PARSE_ERROR = -32700
#: JSON-RPC error code: the JSON is not a valid request object.
INVALID_REQUEST = -32600
#: JSON-RPC error code: no such method.
METHOD_NOT_FOUND = -32601
#: JSON-RPC error code: the method's parameters are wrong.
INVALID_PARAMS = -32602
#: JSON-RPC error code: the method raised.
INTERNAL_ERROR = -32603

RpcHandler = Callable[["RpcReq"], object]


class RpcReq:
    """One request, handed to a method's handler, which answers it once with
    :meth:`ok` or :meth:`err`.

    :attr frame: the request object's JSON text (read it with ``json_get*``).
    """

    __slots__ = ("frame", "_id", "_answer")

    def __init__(self, frame: str, request_id: Optional[str]) -> None:
        self.frame = frame
        self._id = request_id  # the raw JSON of "id", None for a notification
        self._answer: Optional[str] = None

    def ok(self, result_json: str) -> None:
        """Answer with ``result_json``, the result as JSON text (``"5"``, ``'"x"'``...)."""
        if not isinstance(result_json, str):
            raise TypeError(f"result_json must be JSON text (str), not {type(result_json).__name__}")
        if json_get(result_json, "$") is None:
            raise ValueError(f"result_json is not valid JSON: {result_json[:80]!r}")
        self._answer_with(f'"result":{result_json.strip()}')

    def err(self, code: int, message: str) -> None:
        """Answer with a JSON-RPC error (e.g. ``INVALID_PARAMS``, -32602)."""
        int_arg(code, "code")
        self._answer_with(_error_member(code, str(message)))

    def _answer_with(self, member: str) -> None:
        if self._answer is not None:
            raise RuntimeError("response already sent: this request has already been answered")
        self._answer = member


def _error_member(code: int, message: str) -> str:
    return f'"error":{{"code":{code},"message":{json.dumps(message)}}}'


def _reply(request_id: Optional[str], member: str) -> str:
    return f'{{"jsonrpc":"2.0","id":{request_id if request_id is not None else "null"},{member}}}'


class Rpc:
    """A table of JSON-RPC methods; :meth:`process` answers a request or a batch."""

    def __init__(self) -> None:
        self._methods: Dict[str, RpcHandler] = {}

    def add(self, method: str, handler: RpcHandler) -> None:
        """Call ``handler(req)`` for requests naming ``method`` (replacing any
        handler it had)."""
        if not isinstance(method, str) or not method:
            raise ValueError("method must be a non-empty str")
        if not callable(handler):
            raise TypeError("handler must be callable")
        self._methods[method] = handler

    @property
    def methods(self) -> List[str]:
        """The names of the methods added, newest first (as cymongoose lists them)."""
        return list(reversed(self._methods))

    def process(self, frame: Union[str, bytes]) -> str:
        """Answer ``frame`` (a request, or a batch of them as a JSON array): the reply
        as JSON text, or ``""`` when nothing is to be sent (notifications)."""
        text = frame.decode("utf-8", "replace") if isinstance(frame, (bytes, bytearray)) else frame
        if not isinstance(text, str):
            raise TypeError(f"frame must be str or bytes, not {type(frame).__name__}")
        whole = json_get(text, "$")
        if whole is None:
            return _reply(None, _error_member(PARSE_ERROR, "Parse error"))
        if not whole.startswith("["):
            return self._one(whole) or ""
        items: List[str] = []
        while True:
            item = json_get(whole, f"$[{len(items)}]")
            if item is None:
                break
            items.append(item)
        if not items:
            return _reply(None, _error_member(INVALID_REQUEST, "Invalid Request: empty batch"))
        answers = [answer for answer in map(self._one, items) if answer]
        return f"[{','.join(answers)}]" if answers else ""

    def _one(self, request: str) -> Optional[str]:
        """The reply to one request object, or None for a notification."""
        if not request.startswith("{"):
            return _reply(None, _error_member(INVALID_REQUEST, "Invalid Request: not an object"))
        request_id = json_get(request, "$.id")
        if request_id is not None and not (request_id[0] in '"-' or request_id[0].isdigit() or request_id == "null"):
            return _reply(None, _error_member(INVALID_REQUEST, "Invalid Request: id must be a string or number"))
        version, method = json_get(request, "$.jsonrpc"), json_get(request, "$.method")
        if version not in (None, '"2.0"') or method is None or not method.startswith('"'):
            return _reply(request_id, _error_member(INVALID_REQUEST, "Invalid Request"))
        params = json_get(request, "$.params")
        name = json.loads(method)
        handler = self._methods.get(name)
        if handler is None:
            answer: Optional[str] = _error_member(METHOD_NOT_FOUND, f"Method not found: {name}")
        elif params is not None and params[:1] not in ("[", "{"):
            answer = _error_member(INVALID_PARAMS, "Invalid params: must be an array or an object")
        else:
            req = RpcReq(request, request_id)
            try:
                handler(req)
                answer = req._answer or _error_member(INTERNAL_ERROR, "handler produced no response")
            except Exception as exc:  # the caller gets -32603; the log gets the traceback
                logger.exception("JSON-RPC method %r raised", name)
                answer = _error_member(INTERNAL_ERROR, str(exc) or type(exc).__name__)
        return None if request_id is None else _reply(request_id, answer)  # type: ignore[arg-type]
