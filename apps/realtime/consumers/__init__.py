"""The ``/ws/`` consumer (``OrchestraConsumer``), by topic; its protocol is described in the
README (WebSocket)."""

from .consumer import OrchestraConsumer

__all__ = ["OrchestraConsumer"]
