"""Logging pieces referenced by ``settings.LOGGING``: the request id on every record, the text
and JSON formatters, the redaction of secrets, the daily log files (``DailyLogFile``, with
``LOG_DIR``) and the live log (``LiveLogHandler``) behind the dashboard's Logs page. Every line
leaves the process with its secrets redacted: the console's and the files' formatters and the
live log all pass it through ``redact``."""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import os
import queue
import re
import threading
import time
import weakref
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from . import tracing
from .request_context import current_request_id


class RequestIdFilter(logging.Filter):
    """Attach the current request id to every record, so JSON and text lines both carry it,
    and, when tracing is on, the trace id (a JSON line's ``trace_id``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        if tracing.enabled and not hasattr(record, "trace_id"):
            record.trace_id = tracing.current_trace_id()
        return True


class TextFormatter(logging.Formatter):
    """A line of text (the traceback under it), secrets redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(_JsonFormatter):
    """One JSON object per line: timestamp, level, logger, message, request id and any extras;
    every text in it (the traceback included) with its secrets redacted."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("fmt", "{levelname}{name}{message}{request_id}")
        kwargs.setdefault("style", "{")
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", True)
        super().__init__(*args, **kwargs)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {
            name: redact(value) if isinstance(value, str) else value
            for name, value in super().process_log_record(log_data).items()
        }


# --- secrets --------------------------------------------------------------------------------

REDACTED = "[redacted]"
_SECRETS = [
    # The platform's API keys (ao_<prefix>_<secret>): the prefix is not secret, the rest is.
    (re.compile(r"\b(ao_[0-9a-f]{8}_)[A-Za-z0-9_-]+"), rf"\g<1>{REDACTED}"),
    # Providers' keys: OpenAI's and xAI's shapes.
    (re.compile(r"\b(?:sk|xai)-[A-Za-z0-9_-]{8,}"), REDACTED),
    # Credentials in headers, URLs, query strings, JSON and keyword arguments.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), rf"\g<1> {REDACTED}"),
    (re.compile(r"(://[^/\s:@]+:)[^@\s/]+@"), rf"\g<1>{REDACTED}@"),
    (
        re.compile(
            r"""(?i)\b((?:api[_-]?key|access[_-]?token|secret|password|passwd|token)"""
            r"""["']?\s*[:=]\s*["']?)[^\s"',&;}]+"""
        ),
        rf"\g<1>{REDACTED}",
    ),
]


def redact(text: str) -> str:
    """``text`` with the credentials it may carry replaced by ``[redacted]``."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


# --- log files -------------------------------------------------------------------------------


class DailyLogFile(logging.handlers.TimedRotatingFileHandler):
    """A log file renamed with its date at midnight (UTC), the last ``backupCount`` days kept,
    that every process of the platform may write at once.

    The standard rollover renames the file and would, in a second process rolling over the
    same night, replace the first's dated file with a few lines. Here the first process links
    the file to its dated name (refused if it exists: atomic) and unlinks the current name;
    every other process then finds the dated name taken and only reopens the new file. Lines a
    process writes before it notices go to the dated file: they were written that night.
    """

    def __init__(self, filename: str, days: int = 30, level: int | str = logging.NOTSET) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(filename)), exist_ok=True)
        super().__init__(
            filename, when="midnight", backupCount=days, encoding="utf-8", delay=True, utc=True
        )
        self.setLevel(level)

    def doRollover(self) -> None:  # noqa: N802  (the standard library's name)
        if self.stream:
            self.stream.close()
            self.stream = None
        current = int(time.time())
        began = time.gmtime(self.rolloverAt - self.interval)
        dated = self.rotation_filename(f"{self.baseFilename}.{time.strftime(self.suffix, began)}")
        try:
            os.link(self.baseFilename, dated)
        except (FileExistsError, FileNotFoundError):
            pass  # another process rolled this night's file over, or nothing was written
        else:
            os.unlink(self.baseFilename)
        for old in self.getFilesToDelete():
            with contextlib.suppress(FileNotFoundError):
                os.remove(old)
        rollover = self.computeRollover(current)
        while rollover <= current:
            rollover += self.interval
        self.rolloverAt = rollover


# --- the live log ---------------------------------------------------------------------------

# Loggers never published: the bus and Redis themselves (their failures would feed the handler
# that publishes through them) and this module.
IGNORED_LOGGERS = (
    "apps.core.logging", "apps.core.events", "apps.core.redis", "channels", "channels_redis",
    "redis", "asyncio",
)  # fmt: skip
MAX_MESSAGE = 4000
QUEUE_SIZE = 1000
PAUSE_AFTER_FAILURE = 5.0  # seconds during which records are dropped once Redis failed
_FORMATTER = logging.Formatter()


def live_log_key() -> str:
    from .redis import key

    return key("logs", "recent")


def log_line(record: logging.LogRecord, exception: str = "") -> dict[str, Any]:
    """What the Logs page shows of a record (the ``log.record`` event's data), secrets out."""
    message = record.getMessage()
    if exception:
        message = f"{message}\n{exception}"
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE] + "…"
    return {
        "at": datetime.fromtimestamp(record.created, UTC).isoformat(),
        "level": record.levelname,
        "logger": record.name,
        "message": redact(message),
        "request_id": str(getattr(record, "request_id", None) or current_request_id()),
    }


class LiveLogHandler(logging.Handler):
    """Publishes records at or above its level (``LOG_LIVE_LEVEL``) as ``log.record`` events on
    the ``logs`` channel and keeps the latest ``LOG_LIVE_KEPT`` in a Redis list, the Logs
    page's history.

    ``emit`` only puts the line on a bounded in-memory queue (a full queue drops it): a thread
    of the process's own does the Redis and channel layer I/O, so logging never waits on the
    network and never raises. While Redis fails, lines are dropped for a few seconds at a
    time. Records of the bus, Redis and this thread are not published (no feedback loop).
    A forked child (Celery prefork) starts a thread of its own on its first line.
    """

    def __init__(self, level: int | str | None = None, kept: int | None = None) -> None:
        super().__init__(level if level is not None else settings.LOG_LIVE_LEVEL)
        self.kept = kept if kept is not None else settings.LOG_LIVE_KEPT
        self._lines: queue.Queue[dict[str, Any]] = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._start_lock = threading.Lock()
        self._paused_until = 0.0
        self.addFilter(RequestIdFilter())
        os.register_at_fork(after_in_child=_forget_thread_of(weakref.ref(self)))

    def _forget_thread(self) -> None:
        """In a forked child: the parent's thread is not there, its lock may be held."""
        self._thread = None
        self._start_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.name.startswith(IGNORED_LOGGERS) or self._in_own_thread():
                return
            if time.monotonic() < self._paused_until:
                return
            exception = _FORMATTER.formatException(record.exc_info) if record.exc_info else ""
            self._running().put_nowait(log_line(record, exception))
        except queue.Full:
            pass
        except Exception:
            self.handleError(record)

    def _in_own_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def _running(self) -> queue.Queue[dict[str, Any]]:
        if self._thread is None or self._pid != os.getpid():
            with self._start_lock:
                if self._thread is None or self._pid != os.getpid():
                    self._lines = queue.Queue(QUEUE_SIZE)
                    self._pid = os.getpid()
                    self._thread = threading.Thread(
                        target=self._ship,
                        args=(self._lines,),
                        name="orchestra-live-log",
                        daemon=True,
                    )
                    self._thread.start()
        return self._lines

    def _ship(self, lines: queue.Queue[dict[str, Any]]) -> None:
        while True:
            batch = [lines.get()]
            while len(batch) < 100:
                try:
                    batch.append(lines.get_nowait())
                except queue.Empty:
                    break
            try:
                self._keep(batch)
                self._publish(batch)
            except Exception:  # Redis away: drop these, and what comes for a while
                self._paused_until = time.monotonic() + PAUSE_AFTER_FAILURE
            finally:
                for _ in batch:
                    lines.task_done()

    def _keep(self, batch: list[dict[str, Any]]) -> None:
        from .redis import redis_client

        pipe = redis_client().pipeline(transaction=True)
        pipe.lpush(live_log_key(), *(json.dumps(line) for line in batch))
        pipe.ltrim(live_log_key(), 0, self.kept - 1)
        pipe.execute()

    def _publish(self, batch: list[dict[str, Any]]) -> None:
        from .events import publish

        for line in batch:
            publish("logs", "log.record", line)

    def flush(self, timeout: float = 1.0) -> None:
        """Wait (``timeout`` at most) until the lines emitted so far are shipped."""
        if self._thread is None or self._pid != os.getpid():
            return
        deadline = time.monotonic() + timeout
        while self._lines.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)


def _forget_thread_of(handler: weakref.ref[LiveLogHandler]) -> Any:
    def forget() -> None:
        live = handler()
        if live is not None:
            live._forget_thread()

    return forget


def live_handler_attach(logger: logging.Logger, **kwargs: Any) -> None:
    """Celery's ``after_setup_logger``: a worker replaces the root logger's handlers with its
    own, so the live log is added again."""
    if not any(isinstance(handler, LiveLogHandler) for handler in logger.handlers):
        logger.addHandler(LiveLogHandler())


def live_log_recent(limit: int | None = None) -> list[dict[str, Any]]:
    """The latest kept log lines, newest first; none when Redis does not answer."""
    from .redis import redis_client

    try:
        raw = redis_client().lrange(live_log_key(), 0, (limit or settings.LOG_LIVE_KEPT) - 1)
    except Exception:
        logging.getLogger(__name__).warning("could not read the recent log lines", exc_info=True)
        return []
    lines = []
    for item in raw:
        try:
            lines.append(json.loads(item))
        except ValueError:
            continue
    return lines
