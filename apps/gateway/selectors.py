"""What other apps read of the gateway."""

from __future__ import annotations

from apps.core.runtime import run_sync

from .streaming import streams_active


def sse_stream_count() -> int:
    """How many SSE streams run now in every web process (this process's own without Redis)."""
    streams, _complete = run_sync(streams_active(), timeout=5)
    return len(streams)
