from django.apps import AppConfig

# What other apps may import of this app (tests/core/test_structure.py holds every app to its
# face).
PUBLIC = frozenset({"selectors"})


class GatewayConfig(AppConfig):
    name = "apps.gateway"
    label = "gateway"
    verbose_name = "Gateway (OpenAI-compatible and streaming APIs)"
