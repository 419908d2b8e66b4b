"""A server process with tracemalloc on, for finding what its connections hold.

``python -m bench.traced_server uvicorn|daphne <its arguments>``: the server runs as usual;
the first SIGUSR1 starts tracing (importing Django traced would take minutes), and each one
collects garbage and writes a snapshot to ``$BENCH_TRACEMALLOC_DIR/<pid>-<n>.snapshot`` (read
them with ``python -m bench.tracemalloc_diff``). Tracing costs memory and time: figures of a
traced server are for comparing components, not for the idle benchmark's table.
"""

from __future__ import annotations

import gc
import itertools
import os
import runpy
import signal
import sys
import tracemalloc
from pathlib import Path

FRAMES = int(os.environ.get("BENCH_TRACEMALLOC_FRAMES", "40"))


def main() -> None:
    out = Path(os.environ.get("BENCH_TRACEMALLOC_DIR", "var/bench/tracemalloc"))
    out.mkdir(parents=True, exist_ok=True)
    numbers = itertools.count()

    def snapshot(signum, frame) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(FRAMES)
        gc.collect()
        path = out / f"{os.getpid()}-{next(numbers)}.snapshot"
        tracemalloc.take_snapshot().dump(str(path))
        print(f"tracemalloc snapshot written to {path}", flush=True)

    signal.signal(signal.SIGUSR1, snapshot)
    server, *arguments = sys.argv[1:]
    sys.argv = [server, *arguments]
    runpy.run_module(server, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
