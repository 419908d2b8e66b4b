"""Sending one notification through Apprise, which speaks email, Slack, Teams, PagerDuty,
webhooks (``json://``, ``form://``) and a hundred more services from one URL each.

Apprise logs the URLs it posts to (tokens in their paths), so its logger does not reach the
platform's logs (``LOGGING``); what it says at warning level and above about a failed send
becomes the delivery's error, with every part of the channel's URL that could be a secret cut
out.
"""

from __future__ import annotations

import logging
import re

import apprise

from .models import Severity

NOTIFY_TYPES = {
    Severity.INFO: apprise.NotifyType.INFO,
    Severity.WARNING: apprise.NotifyType.WARNING,
    Severity.CRITICAL: apprise.NotifyType.FAILURE,
}
MIN_SECRET_LENGTH = 4


class NotificationError(Exception):
    pass


def url_scheme(url: str) -> str:
    """The service an Apprise URL names (``slack``, ``json``, ``mailtos``); raises
    ``ValueError`` for a URL Apprise does not know."""
    if apprise.Apprise.instantiate(url) is None:
        raise ValueError(
            "not a notification URL Apprise knows (see https://appriseit.com/services/)"
        )
    return url.partition("://")[0].lower()


def redacted(text: str, url: str) -> str:
    """``text`` without any piece of ``url`` that may be a secret (user, password, token in
    the path or query)."""
    rest = url.partition("://")[2]
    for piece in sorted(set(re.split(r"[/:@?&=#]+", rest)), key=len, reverse=True):
        if len(piece) >= MIN_SECRET_LENGTH:
            text = text.replace(piece, "***")
    return text


def send(*, url: str, title: str, body: str, severity: str, timeout: float) -> None:
    """Send, or raise ``NotificationError`` saying why (redacted)."""
    notifier = apprise.Apprise()
    if not notifier.add(url):
        raise NotificationError("the channel's URL is not one Apprise knows")
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
        result = notifier.notify(
            body=body or title,
            title=title,
            notify_type=NOTIFY_TYPES[Severity(severity)],
            timeout=timeout,
        )
    if not result:
        said = " ".join(captured.getvalue().split()) or "the service did not accept it"
        raise NotificationError(redacted(said, url)[:500])
