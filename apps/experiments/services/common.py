"""What the experiments' services share: the A/B testing switch, the announcement that what
requests get has changed, the percentages' decimal constants."""

from __future__ import annotations

import logging
from decimal import Decimal

from django.db import transaction

from apps.core.redis import key, redis_client

from ..selectors import experiment_settings_get

logger = logging.getLogger(__name__)

HUNDRED = Decimal(100)
CENT = Decimal("0.01")


class FeatureDisabledError(Exception):
    """A/B testing is switched off (``ExperimentSettings.enabled``)."""

    message = "A/B testing is switched off in the experiment settings."


def version_key() -> str:
    return key("experiments", "version")


def config_version_bump() -> None:
    """Tell every process that what requests get changed (once the transaction commits);
    without Redis they notice within the hook's ``CACHE_SECONDS``."""
    transaction.on_commit(_bump)


def _bump() -> None:
    try:
        redis_client().incr(version_key())
    except Exception:
        logger.warning("could not announce a change of the experiments", exc_info=True)


def require_enabled() -> None:
    if not experiment_settings_get().enabled:
        raise FeatureDisabledError(FeatureDisabledError.message)
