from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

from .request_context import REQUEST_ID_HEADER, request_id_from, request_id_var


class RequestIdMiddleware:
    """Take ``X-Request-ID`` from the caller or make one, log under it, and return it.

    The id is deliberately not reset when the response leaves this middleware: Django logs
    4xx/5xx responses after the whole middleware chain, and those lines must carry it too.
    Under ASGI every request runs in its own context, so nothing leaks between requests.
    Async-capable so an ASGI request never hops to a thread just for this middleware.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if iscoroutinefunction(self):
            return self.__acall__(request)
        self._bind(request)
        return self._tag(request, self.get_response(request))

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        self._bind(request)
        return self._tag(request, await self.get_response(request))

    @staticmethod
    def _bind(request: HttpRequest) -> None:
        request.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        request_id_var.set(request.request_id)

    @staticmethod
    def _tag(request: HttpRequest, response: HttpResponse) -> HttpResponse:
        response[REQUEST_ID_HEADER] = request.request_id
        return response
