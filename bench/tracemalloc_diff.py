"""What a traced server's connections hold: ``python -m bench.tracemalloc_diff BEFORE AFTER N``.

Compares two snapshots of ``bench/traced_server.py`` (the baseline and a step of the idle
benchmark, ``N`` connections apart) and prints the growth per connection, by component (the
first frame, from the allocation outwards, in a known package or module) and by line.
"""

from __future__ import annotations

import argparse
import collections
import sysconfig
import tracemalloc

# (what the table calls it, a path fragment of its frames). An allocation belongs to the first
# frame, from the allocation outwards, that is not the standard library's (a task belongs to who
# created it, not to asyncio), and that frame to the first component whose fragment it holds.
COMPONENTS = (
    ("channel layer: one reader per process (apps/realtime/layer.py)", "apps/realtime/layer.py"),
    ("channel layer: channels-redis receive (queue, tasks, lock)", "channels_redis/"),
    ("user, key and session objects (Django auth, ORM)", "django/"),
    ("auth stack: cookies, session, user middleware", "channels/sessions.py"),
    ("auth stack: cookies, session, user middleware", "channels/auth.py"),
    ("auth stack: cookies, session, user middleware", "channels/middleware.py"),
    ("auth stack: cookies, session, user middleware", "apps/realtime/auth.py"),
    ("routing: origin check, URL router (scope copies)", "channels/routing.py"),
    ("routing: origin check, URL router (scope copies)", "channels/security/"),
    ("consumer: apps/realtime (loop, tasks, state)", "apps/realtime/"),
    ("consumer: Channels' base", "channels/"),
    ("HTTP metrics middleware (apps/core)", "apps/core/http_metrics.py"),
    ("uvicorn: protocol object, scope, ASGI task, queue", "uvicorn/"),
    ("granian: scope, ASGI task (its protocol objects are Rust's, not traced)", "granian/"),
    ("websockets: protocol state, handshake headers", "websockets/"),
    ("daphne, Twisted, autobahn: protocol objects", "daphne/"),
    ("daphne, Twisted, autobahn: protocol objects", "twisted/"),
    ("daphne, Twisted, autobahn: protocol objects", "autobahn/"),
    ("asgiref (sync_to_async)", "asgiref/"),
    ("redis-py", "redis/"),
    ("the event loop (uvloop handles, timers)", "asyncio/runners.py"),
)
STDLIB = sysconfig.get_paths()["stdlib"]


def component(trace: tracemalloc.Traceback) -> str:
    frames = list(reversed(trace))  # tracemalloc lists the oldest frame first
    ours = [f for f in frames if not f.filename.startswith(STDLIB)] or frames
    for frame in [*ours, *frames]:
        for name, fragment in COMPONENTS:
            if fragment in frame.filename:
                return name
    return f"other: {frames[0].filename.rsplit('/', 2)[-1]}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("connections", type=int)
    parser.add_argument("--lines", type=int, default=40)
    args = parser.parse_args(argv)
    before = tracemalloc.Snapshot.load(args.before)
    after = tracemalloc.Snapshot.load(args.after)
    n = args.connections
    by_component: collections.Counter[str] = collections.Counter()
    counts: collections.Counter[str] = collections.Counter()
    for stat in after.compare_to(before, "traceback"):
        by_component[component(stat.traceback)] += stat.size_diff
        counts[component(stat.traceback)] += stat.count_diff
    total = sum(by_component.values())
    print(f"Python allocations: {total / n:,.0f} bytes per connection ({n} connections)\n")
    print(f"{'component':62}{'bytes/conn':>12}{'blocks/conn':>13}")
    for name, size in by_component.most_common():
        print(f"{name:62}{size / n:>12,.0f}{counts[name] / n:>13.1f}")
    print("\nTop lines (bytes per connection):")
    for stat in after.compare_to(before, "lineno")[: args.lines]:
        where = f"{stat.traceback[0].filename}:{stat.traceback[0].lineno}"
        print(f"{stat.size_diff / n:>9,.0f} {stat.count_diff / n:>6.1f}  {where}")


if __name__ == "__main__":
    main()
