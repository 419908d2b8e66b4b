"""Who is calling, in a form the hot path can check without the database.

``authenticate_bearer`` looks a key up once and then trusts the answer for
``API_KEY_CACHE_SECONDS`` in this process, so a revoked or expired key can keep working for
that long in a process that has just seen it (5 s by default; 0 checks every request).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db.models.signals import post_save
from django.dispatch import receiver

from .models import ApiKey
from .permissions import OPERATE, VIEW
from .services import api_key_authenticate, hash_api_key

MAX_CACHED_KEYS = 10_000


@dataclass(frozen=True)
class Principal:
    user_id: int
    username: str
    api_key_id: int | None
    can_view: bool
    can_operate: bool


def principal_for(user: AbstractUser, api_key: ApiKey | None = None) -> Principal:
    return Principal(
        user_id=user.pk,
        username=user.get_username(),
        api_key_id=api_key.pk if api_key else None,
        can_view=user.has_perm(VIEW),
        can_operate=user.has_perm(OPERATE),
    )


def _principal_for_key(raw_key: str) -> Principal | None:
    api_key = api_key_authenticate(raw_key=raw_key)
    return principal_for(api_key.user, api_key) if api_key else None


_cache: dict[str, tuple[float, Principal]] = {}


async def authenticate_bearer(raw_key: str) -> Principal | None:
    """The principal of an API key; only valid keys are cached, so garbage cannot fill it."""
    digest = hash_api_key(raw_key)
    cached = _cache.get(digest)
    now = time.monotonic()
    if cached and cached[0] > now:
        return cached[1]
    principal = await database_sync_to_async(_principal_for_key)(raw_key)
    ttl = settings.API_KEY_CACHE_SECONDS
    if principal is None:
        _cache.pop(digest, None)
    elif ttl > 0:
        if len(_cache) >= MAX_CACHED_KEYS:
            _cache.clear()
        _cache[digest] = (now + ttl, principal)
    return principal


@receiver(post_save, sender=ApiKey, dispatch_uid="accounts.forget_cached_keys")
def forget_cached_keys(**kwargs) -> None:
    """A key changed (revoked, say): this process stops trusting what it cached at once."""
    _cache.clear()
