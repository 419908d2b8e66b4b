"""What the ASGI server decides before the application sees a request or a WebSocket message.

Called when the ASGI application is loaded (``routing.py``, imported by ``orchestra/asgi.py``),
so it runs in the server process only, after the server's own modules are imported.

daphne (Twisted and autobahn), which ``make run`` uses:

- Twisted's ``http.Request`` parses every POSTed ``multipart/form-data`` body into
  ``request.args`` before daphne hands it on (daphne never reads them). A body its parser
  refuses got a bare ``400 Bad Request`` with no body and no request id, and one that trips it
  (an RFC 2231 ``name*=`` parameter) dropped the connection without an answer. Django parses
  the body itself, with its own errors in the one error shape, so Twisted's parsing is off.
- autobahn *fails* a WebSocket whose message or frame is over daphne's cap (1 MiB) by dropping
  the TCP connection (its ``failByDrop`` default), so clients saw no close frame. It now closes
  with 1009 and a reason. Messages under the cap but over the protocol's 64 KiB limit get the
  protocol's own ``message_too_large`` error and the connection stays open.
- daphne drops the ``reason`` of the application's ``websocket.close`` (ASGI 2.3+), so a
  connection refused for a cap closed with the code alone; it now sends the reason too.

- Twisted's table of reason phrases stops at 418 and skips 422 and 429, so a rate-limited
  answer went out as ``429 Unknown Status``: the table is completed from Python's
  ``http.HTTPStatus`` (``429 Too Many Requests``), never overriding Twisted's own phrases.
- daphne has no ASGI lifespan protocol, so nothing told the LLM core to flush its counters and
  close its provider connections at shutdown ("Unclosed client session" on every Ctrl-C): a
  Twisted before-shutdown trigger now does what the lifespan does under uvicorn.

uvicorn (websockets) needs nothing: at its ``--ws-max-size`` (16 MiB by default) it closes
with 1009 and a reason by itself, and it speaks the lifespan protocol.
"""

from __future__ import annotations

import sys
from typing import Any


def tune_asgi_server() -> None:
    if "daphne.server" in sys.modules:  # never import Twisted into other processes
        _tune_daphne()


def _tune_daphne() -> None:
    from daphne import http_protocol, ws_protocol

    request_class = http_protocol.WebRequest
    if getattr(request_class, "orchestra_tuned", False):
        return
    request_received = request_class.requestReceived

    def requestReceived(self, command, path, version):  # noqa: N802  (Twisted's name)
        self._parsePOSTFormSubmission = False  # read by Twisted >= 24.7
        return request_received(self, command, path, version)

    request_class.requestReceived = requestReceived
    request_class.orchestra_tuned = True
    _complete_reason_phrases()
    # autobahn copies each option from the factory unless the protocol class sets it.
    ws_protocol.WebSocketProtocol.failByDrop = False
    _close_with_reason(ws_protocol.WebSocketProtocol)
    _shutdown_with_daphne()


def _complete_reason_phrases() -> None:
    from http import HTTPStatus

    from twisted.web import http

    for status in HTTPStatus:
        http.RESPONSES.setdefault(status.value, status.phrase.encode())


def _close_with_reason(protocol_class: Any) -> None:
    handle_reply = protocol_class.handle_reply

    def handle_reply_with_reason(self, message):
        if (
            message.get("type") == "websocket.close"
            and message.get("reason")
            and self.state == self.STATE_OPEN
        ):
            self.sendClose(code=message.get("code") or 1000, reason=message["reason"])
            return None
        return handle_reply(self, message)

    protocol_class.handle_reply = handle_reply_with_reason


def _shutdown_with_daphne() -> None:
    import asyncio

    from twisted.internet import defer, reactor

    from apps.providers.llm import shutdown

    def before_shutdown() -> defer.Deferred:
        return defer.Deferred.fromFuture(asyncio.ensure_future(shutdown()))

    twisted_reactor: Any = reactor  # typed as a bare module
    twisted_reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)
