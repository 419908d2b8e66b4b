from prometheus_client import Gauge

connections = Gauge(
    "ai_orchestra_websocket_connections",
    "Open WebSocket connections.",
    multiprocess_mode="livesum",
)
