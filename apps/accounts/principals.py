"""Who is calling, in a form the hot path can check without the database.

``authenticate_bearer`` looks a key up once and then trusts the answer for
``API_KEY_CACHE_SECONDS`` in this process, so a revoked or expired key can keep working for
that long in a process that has just seen it (5 s by default; 0 checks every request). While
the database does not answer, a key found valid within the last ``API_KEY_OUTAGE_SECONDS`` keeps
working (so LLM calls go on through a database restart); past that, the caller gets the
database's error (a 503). Only a failed lookup reads this fallback: the hit path is unchanged.

``principal_current`` answers the same question for a caller that authenticated earlier and is
still there (an open WebSocket): is its key still valid, its user still active, and what may it
do now? Answers are shared by principal (key id, or user id) for ``API_KEY_CACHE_SECONDS``, and
concurrent questions about one principal wait for one lookup, so a thousand connections of one
key cost one query per period. Changes saved in this process (a key revoked, a user deactivated
or given another role) are seen at once here; other processes see them within the period.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from apps.core.database import is_database_unavailable
from apps.core.runtime import SingleFlight

from .models import ApiKey, Workspace, WorkspaceMember
from .permissions import OPERATE, VIEW
from .selectors import workspace_id_for
from .services import api_key_authenticate, hash_api_key

MAX_CACHED_KEYS = 10_000


@dataclass(frozen=True)
class Principal:
    user_id: int
    username: str
    api_key_id: int | None
    can_view: bool
    can_operate: bool
    rpm_limit: int | None = None  # the key's limits (``limits.py``); a session has none
    tpm_limit: int | None = None
    workspace_id: int | None = None  # what its calls are recorded against (``workspace_id_for``)


def principal_for(user: User, api_key: ApiKey | None = None) -> Principal:
    return Principal(
        user_id=user.pk,
        username=user.get_username(),
        api_key_id=api_key.pk if api_key else None,
        can_view=user.has_perm(VIEW),
        can_operate=user.has_perm(OPERATE),
        rpm_limit=api_key.rpm_limit if api_key else None,
        tpm_limit=api_key.tpm_limit if api_key else None,
        workspace_id=workspace_id_for(user=user, api_key=api_key),
    )


def principal_for_key(raw_key: str) -> Principal | None:
    """The principal of an active key, looked up now (no cache); None for any other key."""
    api_key = api_key_authenticate(raw_key=raw_key)
    return principal_for(api_key.user, api_key) if api_key else None


# digest -> (trusted until, known valid at, principal)
_cache: dict[str, tuple[float, float, Principal]] = {}
_key_lookups = SingleFlight()  # concurrent requests with one key share one lookup


async def authenticate_bearer(raw_key: str) -> Principal | None:
    """The principal of an API key; only valid keys are cached, so garbage cannot fill it."""
    digest = hash_api_key(raw_key)
    cached = _cache.get(digest)
    if cached and cached[0] > time.monotonic():
        return cached[2]
    return await _key_lookups.run(digest, lambda: _authenticate(raw_key, digest))


async def _authenticate(raw_key: str, digest: str) -> Principal | None:
    try:
        principal = await database_sync_to_async(principal_for_key)(raw_key)
    except Exception as error:
        cached = _cache.get(digest)
        if not is_database_unavailable(error) or cached is None:
            raise
        if time.monotonic() - cached[1] > settings.API_KEY_OUTAGE_SECONDS:
            _cache.pop(digest, None)
            raise
        return cached[2]
    ttl = settings.API_KEY_CACHE_SECONDS
    if principal is None:
        _cache.pop(digest, None)
    elif ttl > 0 or settings.API_KEY_OUTAGE_SECONDS > 0:
        if len(_cache) >= MAX_CACHED_KEYS:
            _cache.clear()
        now = time.monotonic()
        _cache[digest] = (now + ttl, now, principal)
    return principal


PrincipalId = tuple[int, int | None]  # (user id, API key id or None for a session)

_current: dict[PrincipalId, tuple[float, Principal | None]] = {}
_principal_lookups = SingleFlight()
_forgotten = 0  # bumped by every change: a lookup that raced one must not cache its answer


def _principal_now(user_id: int, api_key_id: int | None) -> Principal | None:
    """The principal as the database has it now; None when it may no longer act."""
    if api_key_id is not None:
        api_key = (
            ApiKey.objects.select_related("user", "user__workspace_membership")
            .filter(pk=api_key_id)
            .first()
        )
        if api_key is None or api_key.user_id != user_id or not api_key.is_active:
            return None
        return principal_for(api_key.user, api_key)
    user = (
        User.objects.select_related("workspace_membership")
        .filter(pk=user_id, is_active=True)
        .first()
    )
    return principal_for(user) if user else None


async def principal_current(principal: Principal) -> Principal | None:
    """``principal`` as it stands now (its role may have changed), or None when its key was
    revoked or has expired, or its user was deactivated or deleted. Raises when the database
    cannot say."""
    key = (principal.user_id, principal.api_key_id)
    cached = _current.get(key)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    return await _principal_lookups.run(key, lambda: _look_up(key))


async def _look_up(key: PrincipalId) -> Principal | None:
    started = _forgotten
    current = await database_sync_to_async(_principal_now)(*key)
    ttl = settings.API_KEY_CACHE_SECONDS
    if ttl > 0 and started == _forgotten:
        if len(_current) >= MAX_CACHED_KEYS:
            _current.clear()
        _current[key] = (time.monotonic() + ttl, current)
    return current


def _forget(*, user_id: int | None = None, api_key_id: int | None = None) -> None:
    """Signals run in other threads than the event loop: iterate over a copy of the keys."""
    global _forgotten
    _forgotten += 1
    for key in list(_current):
        if key[0] == user_id or (api_key_id is not None and key[1] == api_key_id):
            _current.pop(key, None)


@receiver(post_save, sender=ApiKey, dispatch_uid="accounts.forget_cached_keys")
def forget_cached_keys(instance: ApiKey, **kwargs) -> None:
    """A key changed (revoked, say): this process stops trusting what it cached at once."""
    _cache.clear()
    _forget(api_key_id=instance.pk)


@receiver(post_save, sender=User, dispatch_uid="accounts.forget_cached_user")
def forget_cached_user(instance: User, **kwargs) -> None:
    """A user changed (deactivated, say): every principal of theirs is looked up again."""
    _forget(user_id=instance.pk)


@receiver(post_save, sender=Workspace, dispatch_uid="accounts.forget_workspace_saved")
@receiver(post_delete, sender=Workspace, dispatch_uid="accounts.forget_workspace_deleted")
@receiver(post_save, sender=WorkspaceMember, dispatch_uid="accounts.forget_member_saved")
@receiver(post_delete, sender=WorkspaceMember, dispatch_uid="accounts.forget_member_deleted")
def forget_cached_workspaces(**kwargs) -> None:
    """Someone joined or left a workspace, or one went (its keys left it without a signal):
    every principal's workspace is looked up again. Workspaces change rarely."""
    _cache.clear()
    _forget()
    _current.clear()


@receiver(m2m_changed, sender=User.groups.through, dispatch_uid="accounts.forget_cached_role")
@receiver(
    m2m_changed, sender=User.user_permissions.through, dispatch_uid="accounts.forget_cached_perms"
)
def forget_cached_role(instance, reverse: bool, pk_set: set[int] | None, **kwargs) -> None:
    """A user's role or permissions changed (``instance`` is the user, or the group/permission
    when changed from that side, with the users in ``pk_set``)."""
    user_ids = (pk_set or set()) if reverse else {instance.pk}
    if reverse and kwargs.get("action") in ("pre_clear", "post_clear"):
        _forget()
        _current.clear()
    for user_id in user_ids:
        _forget(user_id=user_id)
