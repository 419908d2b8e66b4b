"""The gateway's own Python per ``/v1`` request, counted deterministically.

``python -m bench.profile_gateway [--requests 200] [--warmup 50] [--cpu-requests 2000]
[--callgrind] [--top 25] [--pace-ms 0]``

The ASGI application (``orchestra.asgi:application``, production settings) is driven in one
process, without a server, by one sequential client: ``/v1/chat/completions`` plain and
streamed, and ``/v1/embeddings``, each relayed to the fake upstream (its own process), and on
request (``--kinds stream,sse``) the SSE API's ``/api/streaming/chat``; ``--pace-ms`` has the
upstream send a stream's tokens that far apart, each in a read of its own as at 1,000 streams
(``bench.streams``), rather than all at once. For each kind, after
``--warmup`` requests:

- **calls/request**: Python function calls counted by ``cProfile`` over ``--requests``
  requests, and the functions with the largest cumulative share; **request path**: only
  those made under the request's own entry points (``REQUEST_ROOTS``), the same every run,
  where the total also holds the background work that fell in the window (the routing
  counters' flush every 0.1 s: more of it the slower the machine);
- **CPU µs/request**: ``time.process_time`` over ``--cpu-requests`` requests without the
  profiler, sent by ``--concurrency`` (25) tasks at once (noisy on a shared machine: compare
  runs taken together); ``--save DIR`` keeps each kind's cProfile stats (``DIR/chat.prof``);
- **instructions/request** (``--callgrind``): the same requests in a second process under
  ``valgrind --tool=callgrind``, counted only over the measured requests (a small C shim
  compiled here asks callgrind to start, zero and dump). Slowed some 50x, the process does
  more of its periodic work (recorder shipping, limit sharing) per request than it would at
  full speed, so the figure slightly overstates the per-request cost; it is deterministic.

The environment is ``bench/environment.py``'s (PostgreSQL, Redis, a Celery worker storing the
records, one operator key, the fake upstream), in a database and Redis database of its own
(``--database`` or ``BENCH_DATABASE``, default ``orchestra_bench_profile``; Redis ``--redis-db`` or
``BENCH_REDIS_DB``, default 12) so it can run beside ``bench.gateway``.
The measuring process writes its Prometheus metrics to a directory of its own
(``PROMETHEUS_MULTIPROC_DIR``), as the production image's processes do.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hello"}]}
KINDS = {
    "chat": ("/v1/chat/completions", CHAT),
    "stream": ("/v1/chat/completions", {**CHAT, "stream": True}),
    "embeddings": ("/v1/embeddings", {"model": "fake-embed", "input": "hello"}),
}
# On request (``--kinds stream,sse``): the SSE API, through Django, for comparison with /v1.
OTHER_KINDS = {"sse": ("/api/streaming/chat", CHAT)}

SHIM = r"""
#include <valgrind/callgrind.h>
void cg_start(void) { CALLGRIND_START_INSTRUMENTATION; }
void cg_zero(void) { CALLGRIND_ZERO_STATS; }
void cg_dump(const char *name) { CALLGRIND_DUMP_STATS_AT(name); }
"""


# --- the measuring process --------------------------------------------------------------------


class Client:
    """Drives the ASGI application as a server would, one request at a time."""

    def __init__(self, app: Any, key: str) -> None:
        self.app = app
        self.key = key.encode()

    async def request(self, path: str, body: bytes) -> int:
        delivered = False
        status = 0

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.get_running_loop().create_future()  # the client stays connected
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "scheme": "http",
            "method": "POST",
            "root_path": "",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": [
                (b"host", b"127.0.0.1:8000"),
                (b"user-agent", b"bench"),
                (b"accept", b"*/*"),
                (b"authorization", b"Bearer " + self.key),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
            "state": {},
        }
        await self.app(scope, receive, send)
        return status

    async def run(self, kind: str, count: int) -> None:
        path, payload = {**KINDS, **OTHER_KINDS}[kind]
        body = json.dumps(payload).encode()
        for _ in range(count):
            status = await self.request(path, body)
            if status != 200:
                raise RuntimeError(f"{kind}: answered {status}")


async def _lifespan(app: Any) -> None:
    messages = asyncio.Queue[dict[str, Any]]()
    await messages.put({"type": "lifespan.startup"})
    done = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            done.set()

    asyncio.get_running_loop().create_task(app({"type": "lifespan"}, messages.get, send))
    await done.wait()


def _shim(directory: str) -> Any:
    source = Path(directory, "shim.c")
    source.write_text(SHIM)
    library = Path(directory, "shim.so")
    subprocess.run(["cc", "-O1", "-shared", "-fPIC", "-o", library, source], check=True)
    return ctypes.CDLL(str(library))


# What runs for the requests themselves, called by the event loop rather than by the request's
# own coroutines: the client (the application under it), the upstream connection's protocol
# callbacks, the metrics batch, the request timers. Everything else that ran meanwhile (the
# routing counters' flush, Redis, listeners) is background work that comes with wall time.
REQUEST_ROOTS = (
    ("bench/profile_gateway.py", "run"),
    ("transport/http1.py", "data_received"),
    ("transport/http1.py", "connection_lost"),
    ("transport/http1.py", "connection_made"),
    ("transport/http1.py", "expire"),
    ("transport/http1.py", "_expire"),
    ("core/metrics.py", "apply"),
)


def request_path_calls(stats: Any) -> float:
    """Calls made under ``REQUEST_ROOTS``: each function's calls counted in the share of its
    callers that lie under them (cProfile keeps calls per caller, not per call path)."""
    table = stats.stats
    roots = {
        function
        for function in table
        if any(function[0].endswith(path) and function[2] == name for path, name in REQUEST_ROOTS)
    }
    share = {function: 1.0 if function in roots else 0.0 for function in table}
    for _ in range(64):  # call chains are shorter than this
        for function, (_, _, _, _, callers) in table.items():
            if function in roots or not callers:
                continue
            calls = sum(caller[1] for caller in callers.values())
            share[function] = (
                sum(counts[1] * share.get(caller, 0.0) for caller, counts in callers.items())
                / calls
            )
    return sum(entry[1] * share[function] for function, entry in table.items())


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """In the measuring process: returns the figures of each kind."""
    import cProfile
    import io
    import pstats

    import uvloop

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from orchestra.asgi import application

    shim = _shim(args.shim_dir) if args.callgrind_child else None
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    client = Client(application, args.key)
    loop.run_until_complete(_lifespan(application))
    results: dict[str, Any] = {}
    if shim is not None:
        shim.cg_start()
    for kind in args.kinds.split(","):
        loop.run_until_complete(client.run(kind, args.warmup))
        if shim is not None:
            shim.cg_zero()
            loop.run_until_complete(client.run(kind, args.requests))
            shim.cg_dump(kind.encode())
            continue
        profile = cProfile.Profile()
        profile.enable()
        loop.run_until_complete(client.run(kind, args.requests))
        profile.disable()
        if args.save:
            profile.dump_stats(f"{args.save}/{kind}.prof")
        stats = pstats.Stats(profile, stream=(out := io.StringIO()))
        stats.sort_stats("cumulative").print_stats(args.top)
        each = args.cpu_requests // args.concurrency
        started, started_system = time.process_time(), os.times().system
        loop.run_until_complete(
            asyncio.gather(*(client.run(kind, each) for _ in range(args.concurrency)))
        )
        cpu = time.process_time() - started
        system = os.times().system - started_system
        results[kind] = {
            "calls_per_request": stats.total_calls / args.requests,  # type: ignore[attr-defined]
            "request_calls_per_request": request_path_calls(stats) / args.requests,
            "cpu_us_per_request": cpu / (each * args.concurrency) * 1e6,
            "system_us_per_request": system / (each * args.concurrency) * 1e6,
            "top": out.getvalue(),
        }
    return results


# --- the driving process ----------------------------------------------------------------------


def _child(args: argparse.Namespace, env: dict[str, str], key: str, *, callgrind: str = "") -> Any:
    command = [
        sys.executable, "-m", "bench.profile_gateway", "--child", "--key", key,
        "--requests", str(args.requests), "--warmup", str(args.warmup),
        "--cpu-requests", str(args.cpu_requests), "--top", str(args.top), "--kinds", args.kinds,
        "--concurrency", str(args.concurrency),
    ]  # fmt: skip
    if args.save:
        command += ["--save", str(Path(args.save).resolve())]
    if callgrind:
        command = [
            "valgrind", "--tool=callgrind", "--instr-atstart=no", "--dump-instr=no",
            f"--callgrind-out-file={callgrind}/callgrind.out", *command,
            "--callgrind-child", "--shim-dir", callgrind,
        ]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="orchestra-prometheus-") as prometheus:
        result = subprocess.run(
            command,
            env={**env, "PROMETHEUS_MULTIPROC_DIR": prometheus},
            cwd=Path(__file__).resolve().parent.parent,
            capture_output=True,
            text=True,
        )
    if result.returncode:
        raise RuntimeError(f"the measuring process failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _instructions(directory: str, kinds: list[str]) -> dict[str, int]:
    """Each kind's instruction count, from the dumps made at its end (``cg_dump``)."""
    counts: dict[str, int] = {}
    for dump in sorted(Path(directory).glob("callgrind.out*")):
        text = dump.read_text(errors="replace")
        trigger = re.search(r"^desc: Trigger: Client Request: (\S+)", text, re.M)
        summary = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        if trigger and summary and trigger.group(1) in kinds:
            counts[trigger.group(1)] = int(summary.group(1))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--cpu-requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=25)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--save", help="a directory to save each kind's cProfile stats in")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument(
        "--pace-ms", type=float, default=0.0, help="between a stream's tokens from the upstream"
    )
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument(
        "--database", default=os.environ.get("BENCH_DATABASE", "orchestra_bench_profile")
    )
    parser.add_argument("--redis-db", type=int, default=int(os.environ.get("BENCH_REDIS_DB", 12)))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--callgrind-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--shim-dir", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return

    from . import environment as bench_environment

    bench_environment.BENCH_DATABASE = args.database
    bench_environment.BENCH_REDIS_DB = args.redis_db
    kinds = args.kinds.split(",")
    with bench_environment.environment() as env:
        print(f"Database: {env.database}; Redis: {env.redis}; upstream: {env.upstream.base_url}")
        if args.pace_ms:
            env.upstream.configure(chunk_delay_ms=args.pace_ms)
        results = _child(args, env.env, env.key)
        instructions: dict[str, int] = {}
        if args.callgrind:
            with tempfile.TemporaryDirectory(prefix="orchestra-callgrind-") as directory:
                _child(args, env.env, env.key, callgrind=directory)
                instructions = _instructions(directory, kinds)
    for kind in kinds:
        print(f"\n=== {kind}: top {args.top} by cumulative time (cProfile) ===")
        print(results[kind]["top"].split("\n", 6)[-1].rstrip())
    print(f"\nPer request ({args.requests} requests after {args.warmup} of warm-up; CPU over "
          f"{args.cpu_requests}, noisy on a shared machine):")  # fmt: skip
    print(
        f"{'kind':<12}{'calls':>10}{'request path':>14}{'CPU µs':>10}{'of it system':>14}"
        f"{'instructions':>16}"
    )
    for kind in kinds:
        figures = results[kind]
        count = instructions.get(kind)
        shown = f"{count / args.requests:,.0f}" if count else "-"
        print(
            f"{kind:<12}{figures['calls_per_request']:>10.1f}"
            f"{figures['request_calls_per_request']:>14.1f}"
            f"{figures['cpu_us_per_request']:>10.1f}{figures['system_us_per_request']:>14.1f}"
            f"{shown:>16}"
        )
    print(
        "calls: every Python call cProfile saw; request path: those under the request's own "
        "entry points (REQUEST_ROOTS), without the background work that ran meanwhile; "
        "system: the kernel's share of the CPU (sockets)"
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
