"""Every change to providers, models or routing settings bumps the shared config version, so
each process reloads its routing snapshot on its next request (see ``config.py``)."""

from __future__ import annotations

import logging

import redis
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .llm.routing.state import VERSION, bump_sync
from .models import LlmModel, Provider, RoutingSettings

logger = logging.getLogger(__name__)


def config_version_bump() -> None:
    try:
        bump_sync(VERSION)
    except redis.RedisError:
        logger.warning(
            "could not bump the routing config version; processes reload within a minute"
        )


@receiver(post_save, sender=Provider, dispatch_uid="providers.bump.provider.save")
@receiver(post_delete, sender=Provider, dispatch_uid="providers.bump.provider.delete")
@receiver(post_save, sender=LlmModel, dispatch_uid="providers.bump.model.save")
@receiver(post_delete, sender=LlmModel, dispatch_uid="providers.bump.model.delete")
@receiver(post_save, sender=RoutingSettings, dispatch_uid="providers.bump.settings.save")
def routing_config_changed(**kwargs) -> None:
    transaction.on_commit(config_version_bump)
