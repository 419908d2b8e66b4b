"""What a traced server's connections hold: ``python -m bench.tracemalloc_diff BEFORE AFTER N``.

Compares two snapshots of ``bench/traced_server.py`` (the baseline and a step of the idle
benchmark, ``N`` connections apart) and prints the growth per connection, by component (the
first frame, from the allocation outwards, in a known package or module) and by line.
"""

from __future__ import annotations

import argparse
import collections
import tracemalloc

# (what the table calls it, a path fragment of its frames); the first match from the
# allocating frame outwards names the component.
COMPONENTS = (
    ("project: apps/realtime consumers", "apps/realtime/"),
    ("project: other apps", "/apps/"),
    ("channels_redis (channel layer)", "channels_redis/"),
    ("channels (consumer base, auth, sessions)", "/channels/"),
    ("uvicorn (protocol, ASGI plumbing)", "uvicorn/"),
    ("websockets (the protocol's state)", "websockets/"),
    ("daphne / Twisted / autobahn", "daphne/"),
    ("daphne / Twisted / autobahn", "twisted/"),
    ("daphne / Twisted / autobahn", "autobahn/"),
    ("django (users, sessions, ORM)", "django/"),
    ("asgiref (sync_to_async)", "asgiref/"),
    ("redis-py", "redis/"),
    ("asyncio (tasks, futures, queues)", "asyncio/"),
)


def component(trace: tracemalloc.Traceback) -> str:
    for frame in trace:  # most recent first
        for name, fragment in COMPONENTS:
            if fragment in frame.filename:
                return name
    return f"other: {trace[0].filename.rsplit('/', 2)[-1]}"


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
    print(f"{'component':50}{'bytes/conn':>12}{'blocks/conn':>13}")
    for name, size in by_component.most_common():
        print(f"{name:50}{size / n:>12,.0f}{counts[name] / n:>13.1f}")
    print("\nTop lines (bytes per connection):")
    for stat in after.compare_to(before, "lineno")[: args.lines]:
        where = f"{stat.traceback[0].filename}:{stat.traceback[0].lineno}"
        print(f"{stat.size_diff / n:>9,.0f} {stat.count_diff / n:>6.1f}  {where}")


if __name__ == "__main__":
    main()
