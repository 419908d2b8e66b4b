"""The dashboard's one write: publishing Home's figures (and keeping them for the next page)."""

from __future__ import annotations

import logging

from apps.core.events import publish
from apps.core.runtime import run_sync

from .alerts import alert_log_follow
from .events import FIGURES
from .figures import compute_figures, figures_remember

logger = logging.getLogger(__name__)


def figures_publish() -> dict:
    """Compute the figures, keep them for pages about to render, publish them on ``metrics``;
    and keep following the alerts for the recent-alerts list."""
    try:
        run_sync(alert_log_follow(), timeout=5)
    except Exception:
        logger.warning("could not follow the alerts channel", exc_info=True)
    data = compute_figures().as_data()
    figures_remember(data)
    publish("metrics", FIGURES, data)
    return data
