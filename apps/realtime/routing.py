from urllib.parse import ParseResult

from channels.routing import URLRouter
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.urls import path

from .auth import WebSocketAuthStack
from .consumers import OrchestraConsumer
from .servers import tune_asgi_server

tune_asgi_server()


class BrowserOriginValidator(OriginValidator):
    """Checks the Origin that browsers send; clients that send none (scripts) pass on to auth."""

    def valid_origin(self, parsed_origin: ParseResult | None) -> bool:
        return parsed_origin is None or super().valid_origin(parsed_origin)


websocket_urlpatterns = [path("ws/", OrchestraConsumer.as_asgi())]

websocket_application = BrowserOriginValidator(
    WebSocketAuthStack(URLRouter(websocket_urlpatterns)),
    [*settings.ALLOWED_HOSTS, *settings.WEBSOCKET_ALLOWED_ORIGINS],
)
