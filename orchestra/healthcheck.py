"""The production image's health check: ``python -m orchestra.healthcheck [port]``.

Exits 0 when ``/health`` on this container answers 200. The request names a host the
production settings accept (the first of ``ALLOWED_HOSTS``), since Django refuses any other
``Host`` before the view runs. Standard library only: it runs every few seconds.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_PORT = 8000


def allowed_host() -> str:
    """A host name ``ALLOWED_HOSTS`` accepts: its first entry (``.example.com`` matches
    ``example.com``; ``*`` anything)."""
    first = os.environ.get("ALLOWED_HOSTS", "").split(",")[0].strip()
    if not first or first == "*":
        return "localhost"
    return first.lstrip(".")


def main(argv: list[str]) -> int:
    port = int(argv[0]) if argv else DEFAULT_PORT
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/health", headers={"Host": allowed_host()}
    )
    try:
        with urllib.request.urlopen(request, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError):
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
