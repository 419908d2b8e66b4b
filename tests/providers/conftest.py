"""The provider fixtures live in ``tests/support/providers.py`` (a plugin of the whole suite)."""

from tests.support.providers import deploy, provider_for, routing

__all__ = ["deploy", "provider_for", "routing"]
