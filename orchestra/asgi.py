"""ASGI entry point: the OpenAI-compatible hot path, Django for the rest of HTTP, Channels for
WebSockets."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestra.settings.development")
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from apps.gateway.asgi import GatewayRouter, lifespan  # noqa: E402
from apps.realtime.routing import websocket_application  # noqa: E402

if settings.SERVE_STATIC:
    django_application = ASGIStaticFilesHandler(django_application)

application = ProtocolTypeRouter(
    {
        "http": GatewayRouter(django_application),
        "websocket": websocket_application,
        "lifespan": lifespan,
    }
)

import gc  # noqa: E402

gc.freeze()  # objects made while importing are never garbage: keep collections short
