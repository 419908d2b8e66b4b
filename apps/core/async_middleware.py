"""Django's middleware, run inline under ASGI where it does not block.

Django's ``MiddlewareMixin`` runs each ``process_request`` and ``process_response`` of an ASGI
request in a thread (``sync_to_async``), and its handler does the same with each
``process_view`` and ``process_template_response``: some twenty thread hops per request, most of
them to compute a header. The classes here are Django's (and django_prometheus') with those
steps run in the event loop, except the few that may touch the database (``blocks``): the
session's save, the messages' store, and CSRF with ``CSRF_USE_SESSIONS``. A step that touches the
database inline anyway fails loudly (Django's ``SynchronousOnlyOperation``) rather than blocking.
Under WSGI and the test client (``__call__`` without an event loop) nothing changes.

Django's deploy checks of its security, clickjacking and CSRF middleware look for their own
dotted paths in ``MIDDLEWARE``: ``security_checks`` runs them with these classes named as Django's
(the settings silence the three warnings that only say those paths are missing).
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.core.checks import CheckMessage
from django.core.checks.security import base as security_checks_base
from django.core.checks.security import csrf as csrf_checks
from django.http import HttpRequest
from django.middleware import clickjacking, common, csrf, security
from django.utils.deprecation import MiddlewareMixin
from django.utils.module_loading import import_string
from django_prometheus import middleware as prometheus

# The steps Django's handler adapts to a thread itself, and the async ones replacing them.
HANDLER_STEPS = {
    "process_view": "_inline_view",
    "process_template_response": "_inline_template_response",
}


class InlineMiddlewareMixin(MiddlewareMixin):
    """A ``MiddlewareMixin`` whose steps run in the event loop, each unless ``blocks`` says
    it may block for this request: then in the request's thread, as Django's mixin runs all."""

    def __init__(self, get_response: Any) -> None:
        super().__init__(get_response)
        if self.async_mode:
            for step, inline in HANDLER_STEPS.items():
                if hasattr(self, step):
                    setattr(self, step, getattr(self, inline))

    def blocks(self, step: str, request: HttpRequest) -> bool:
        return False

    async def __acall__(self, request: HttpRequest) -> Any:
        response = None
        if hasattr(self, "process_request"):
            response = await self._run("process_request", request)
        response = response or await self.get_response(request)  # type: ignore[misc]  # async
        if hasattr(self, "process_response"):
            response = await self._run("process_response", request, response)
        return response

    async def _inline_view(self, request: HttpRequest, *args: Any) -> Any:
        return await self._run("process_view", request, *args)

    async def _inline_template_response(self, request: HttpRequest, response: Any) -> Any:
        return await self._run("process_template_response", request, response)

    async def _run(self, step: str, request: HttpRequest, *args: Any) -> Any:
        method = getattr(type(self), step)
        if self.blocks(step, request):
            return await sync_to_async(method, thread_sensitive=True)(self, request, *args)
        return method(self, request, *args)


class SecurityMiddleware(InlineMiddlewareMixin, security.SecurityMiddleware):
    pass


class SessionMiddleware(InlineMiddlewareMixin, sessions.SessionMiddleware):
    """The session is loaded lazily (by a view, in its thread); only its save blocks."""

    def blocks(self, step: str, request: HttpRequest) -> bool:
        if step != "process_response":
            return False
        session = getattr(request, "session", None)
        return settings.SESSION_SAVE_EVERY_REQUEST or getattr(session, "modified", False)


class CommonMiddleware(InlineMiddlewareMixin, common.CommonMiddleware):
    pass


class CsrfViewMiddleware(InlineMiddlewareMixin, csrf.CsrfViewMiddleware):
    """The secret is the cookie's, unless ``CSRF_USE_SESSIONS`` (a session load or save). A
    POST's form is parsed in ``process_view``: in memory, but a multipart form's files may be
    written to disk. A refusal renders the failure page, whose template is read once (the
    cached loader)."""

    def blocks(self, step: str, request: HttpRequest) -> bool:
        if settings.CSRF_USE_SESSIONS:
            return True
        return step == "process_view" and request.content_type == "multipart/form-data"


class AuthenticationMiddleware(InlineMiddlewareMixin, auth.AuthenticationMiddleware):
    """``request.user`` is lazy: the user is loaded by whoever reads it."""


class MessageMiddleware(InlineMiddlewareMixin, messages.MessageMiddleware):
    """Messages are stored (in the cookie, else the session, which may load it) only when some
    were added or read."""

    def blocks(self, step: str, request: HttpRequest) -> bool:
        storage = getattr(request, "_messages", None)
        return (
            step == "process_response"
            and storage is not None
            and (storage.used or storage.added_new)
        )


class XFrameOptionsMiddleware(InlineMiddlewareMixin, clickjacking.XFrameOptionsMiddleware):
    pass


class PrometheusBeforeMiddleware(InlineMiddlewareMixin, prometheus.PrometheusBeforeMiddleware):
    pass


class PrometheusAfterMiddleware(InlineMiddlewareMixin, prometheus.PrometheusAfterMiddleware):
    pass


# Django's deploy checks that run only when its own middleware's path is in MIDDLEWARE.
MIDDLEWARE_GATED_CHECKS = (
    security_checks_base.check_sts,
    security_checks_base.check_sts_include_subdomains,
    security_checks_base.check_sts_preload,
    security_checks_base.check_content_type_nosniff,
    security_checks_base.check_ssl_redirect,
    security_checks_base.check_xframe_deny,
    security_checks_base.check_referrer_policy,
    security_checks_base.check_cross_origin_opener_policy,
    csrf_checks.check_csrf_cookie_secure,
)


def django_path(path: str) -> str:
    """The dotted path of the Django class a class of this module stands for; others as given."""
    if not path.startswith(f"{__name__}."):
        return path
    (base,) = (base for base in import_string(path).__bases__ if base is not InlineMiddlewareMixin)
    return f"{base.__module__}.{base.__qualname__}"


def security_checks(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    middleware = settings.MIDDLEWARE
    settings.MIDDLEWARE = [django_path(path) for path in middleware]
    try:
        return [message for check in MIDDLEWARE_GATED_CHECKS for message in check(app_configs)]
    finally:
        settings.MIDDLEWARE = middleware
