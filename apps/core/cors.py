"""CORS for ASGI applications served beside Django (``/v1``), by django-cors-headers' own rules.

Django's paths get CORS from ``corsheaders.middleware.CorsMiddleware`` (installed by the
settings when CORS is on). ``/v1`` never reaches Django's middleware, so this wrapper asks the
same middleware class, with the same ``CORS_*`` settings, about a stand-in request: a preflight
(``OPTIONS`` with ``Access-Control-Request-Method``) to an enabled URL is answered here with
200 and, for an allowed origin, the CORS headers; any other answer (errors included) gets the
headers added when its origin is allowed. A request without ``Origin`` (every non-browser
client) passes straight through, at the cost of one header scan.
"""

from __future__ import annotations

from typing import Any

from corsheaders.middleware import CorsMiddleware
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase

Headers = list[tuple[bytes, bytes]]


def _cors_headers(response: HttpResponseBase) -> Headers:
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in response.items()
        if name.lower().startswith("access-control-") or name.lower() == "vary"
    ]


def _request_of(scope: dict[str, Any]) -> HttpRequest:
    """A Django request standing in for the ASGI one, as far as CORS looks at it."""
    request = HttpRequest()
    request.method = scope["method"]
    request.path = request.path_info = scope["path"]
    for name, value in scope.get("headers", ()):
        key = name.decode("latin-1").upper().replace("-", "_")
        request.META[f"HTTP_{key}"] = value.decode("latin-1")
    return request


class AsgiCors:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.cors = CorsMiddleware(lambda request: HttpResponse())

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not any(name == b"origin" for name, _ in scope.get("headers", ())):
            await self.app(scope, receive, send)
            return
        request = _request_of(scope)
        preflight = self.cors.check_preflight(request)
        if preflight is not None:
            self.cors.add_response_headers(request, preflight)
            headers = [(b"content-length", b"0"), *_cors_headers(preflight)]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        extra = _cors_headers(self.cors.add_response_headers(request, HttpResponse()))
        if not extra:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_cors)
