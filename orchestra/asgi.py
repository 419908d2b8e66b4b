"""ASGI entry point: the OpenAI-compatible hot path, Django for the rest of HTTP, Channels for
WebSockets; every HTTP request and WebSocket handshake counted once (``HttpMetrics``)."""

import os

import django

from apps.core.tracing import tracing_setup

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestra.settings.development")
tracing_setup(process="web")  # before Django builds its middleware chain
django.setup(set_prefix=False)  # as get_asgi_application() does

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.urls import get_resolver  # noqa: E402

from apps.core.http_metrics import HttpMetrics  # noqa: E402
from apps.core.loop_lag import watch_loop_lag  # noqa: E402
from apps.core.platform_settings import start_settings_follower  # noqa: E402
from apps.core.process_report import start_process_reporter  # noqa: E402
from apps.gateway.asgi import DjangoHandler, GatewayRouter, lifespan, route_of  # noqa: E402
from apps.realtime.routing import websocket_application, websocket_urlpatterns  # noqa: E402

django_application: ASGIHandler = DjangoHandler()

# The URLconf imports every app's views: about 0.2 s, which the first request to Django in each
# process otherwise spent, with every request of that process waiting behind it.
get_resolver().url_patterns  # noqa: B018

if settings.SERVE_STATIC:
    django_application = ASGIStaticFilesHandler(django_application)


def web_process_started() -> None:
    start_process_reporter("web")
    start_settings_follower()
    watch_loop_lag("web")


application = HttpMetrics(
    ProtocolTypeRouter(
        {
            "http": GatewayRouter(django_application),
            "websocket": websocket_application,
            "lifespan": lifespan,
        }
    ),
    route_of=route_of,
    websocket_routes=[f"/{pattern.pattern}" for pattern in websocket_urlpatterns],
    on_start=web_process_started,
)

import gc  # noqa: E402

# Objects made while importing are never garbage: out of every collection. Requests leave a few
# objects alive for a moment (the upstream call in flight), so the default young threshold (700)
# ran a collection every hundred requests or so: about 2% of a web process's CPU (bench/README.md).
# Every 10,000 allocations still frees cycles within a fraction of a second under load.
gc.freeze()
gc.set_threshold(10_000, *gc.get_threshold()[1:])
