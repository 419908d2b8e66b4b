from django.apps import AppConfig

# Nothing: other apps reach the /ws/ clients through the core's event bus
# (tests/core/test_structure.py holds every app to its face).
PUBLIC = frozenset[str]()


class RealtimeConfig(AppConfig):
    name = "apps.realtime"
    label = "realtime"
    verbose_name = "Realtime (WebSocket)"
