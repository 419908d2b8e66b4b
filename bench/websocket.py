"""WebSocket benchmark: idle connections one process holds, and a query's round trip.

1. Idle connections: authenticated connections are opened against one server process in
   steps; after each step the process's resident memory is read from /proc and a sample of
   connections must still answer a ping. Memory per connection = growth / connections.
2. Round trip: sequential ``query`` messages over one WebSocket (handed to a Celery worker,
   answered through the channel layer) against ``/v1/chat/completions`` on the same server
   and the fake upstream directly.
3. With ``--hops``: where a query's round trip goes, hop by hop (``bench/hops.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import uvloop
import websockets

from . import hops as hop_marks
from .environment import Environment, environment, raise_open_files_limit, save_report
from .gateway import _percentile

STEPS = (1000, 2500, 5000, 10000, 20000)
CLIENT_PROCESSES = 2
OPEN_FILES = 50_000  # 20,000 sockets in the server, as many in the clients, and some
SPARE_FILES = 100  # the server's own: its listening socket, Redis, the database, logs


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def server_pids(process) -> list[int]:
    """The server's own pid (daphne), or its workers' too (uvicorn, granian)."""
    children = Path(f"/proc/{process.process.pid}/task/{process.process.pid}/children")
    kids = [int(pid) for pid in children.read_text().split()] if children.exists() else []
    return [process.process.pid, *kids]


async def _open(url: str, key: str, deflate: bool = False) -> websockets.ClientConnection:
    """``deflate``: offer permessage-deflate, as browsers do (the server may accept it)."""
    return await websockets.connect(
        url,
        additional_headers={"Authorization": f"Bearer {key}"},
        compression="deflate" if deflate else None,
        open_timeout=60,
        ping_interval=None,
        max_queue=4,
    )


class Clients:
    """Client processes holding the idle connections (one process's loop opens a few thousand
    a second; ``CLIENT_PROCESSES`` share the opening and the holding), driven over pipes."""

    def __init__(self, url: str, key: str, processes: int, deflate: bool = False) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes = []
        self.processes = []
        for _ in range(processes):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_client_process, args=(theirs, url, key, deflate), daemon=True
            )
            process.start()
            self.pipes.append(ours)
            self.processes.append(process)

    def ask(self, commands: list[tuple]) -> list:
        for pipe, command in zip(self.pipes, commands, strict=True):
            pipe.send(command)
        return [pipe.recv() for pipe in self.pipes]

    def hold(self, total: int) -> tuple[int, int]:
        """Open connections until ``total`` are held across the clients: (held, failed)."""
        count = len(self.pipes)
        shares = [total // count + (i < total % count) for i in range(count)]
        replies = self.ask([("hold", share) for share in shares])
        return sum(held for held, _ in replies), sum(failed for _, failed in replies)

    def pings(self, sample: int) -> tuple[int, int]:
        """A ping on ``sample`` connections spread over the clients: (answered, asked)."""
        replies = self.ask([("ping", sample // len(self.pipes))] * len(self.pipes))
        return sum(answered for answered, _ in replies), sum(asked for _, asked in replies)

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("close",))
        for process in self.processes:
            process.join(30)
            if process.is_alive():
                process.kill()


def _client_process(pipe, url: str, key: str, deflate: bool) -> None:
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    connections: list = []
    while True:
        command, *arguments = pipe.recv()
        if command == "hold":
            held = loop.run_until_complete(_hold(url, key, deflate, connections, arguments[0]))
            pipe.send(held)
        elif command == "ping":
            sample = connections[:: max(1, len(connections) // max(1, arguments[0]))]
            pipe.send((loop.run_until_complete(_pings(sample)), len(sample)))
        else:
            loop.run_until_complete(
                asyncio.gather(*(c.close() for c in connections), return_exceptions=True)
            )
            return


async def _hold(
    url: str, key: str, deflate: bool, connections: list, target: int
) -> tuple[int, int]:
    failures = 0
    while len(connections) < target and failures <= target // 10:
        batch = await asyncio.gather(
            *(_open(url, key, deflate) for _ in range(min(100, target - len(connections)))),
            return_exceptions=True,
        )
        failures += sum(isinstance(c, BaseException) for c in batch)
        connections += [c for c in batch if not isinstance(c, BaseException)]
    return len(connections), failures


def idle_connections(
    port: int,
    key: str,
    pids: list[int],
    steps: tuple[int, ...],
    clients: int = CLIENT_PROCESSES,
    snapshot: Callable[[], None] | None = None,
    deflate: bool = False,
) -> list[dict]:
    """Open connections in ``steps``; after each, the server's RSS growth per connection and a
    sample answering a ping. ``snapshot`` is called at the baseline and after each step."""
    pool = Clients(f"ws://127.0.0.1:{port}/ws/", key, clients, deflate)
    results = []
    try:
        pool.hold(10)  # the first connections' one-off costs (imports, caches) are not counted
        time.sleep(1.0)
        baseline = sum(rss_kib(pid) for pid in pids)
        if snapshot:
            snapshot()
        for target in steps:
            started = time.perf_counter()
            held, failures = pool.hold(target)
            seconds = time.perf_counter() - started
            time.sleep(1.0)
            answered, asked = pool.pings(100)
            rss = sum(rss_kib(pid) for pid in pids)
            results.append(
                {
                    "connections": held,
                    "failed_to_open": failures,
                    "sample_answering": f"{answered}/{asked}",
                    "rss_mib": round(rss / 1024, 1),
                    "kib_per_connection": round((rss - baseline) / max(1, held - 10), 1),
                    "seconds_to_open": round(seconds, 1),
                }
            )
            if snapshot:
                snapshot()
            if failures > target // 10:
                break
    finally:
        pool.close()
    return results


async def _pings(sample: list) -> int:
    answered = 0
    for connection in sample:
        try:
            await connection.send(json.dumps({"type": "ping"}))
            await asyncio.wait_for(connection.recv(), 5)
            answered += 1
        except Exception:
            pass
    return answered


async def query_round_trips(
    port: int, upstream_port: int, key: str, requests: int, hops: bool = False
) -> dict:
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "hello"}]}
    headers = {"Authorization": f"Bearer {key}"}
    results = {}
    async with httpx.AsyncClient(timeout=30) as client:
        for name, url in (
            ("upstream directly", f"http://127.0.0.1:{upstream_port}/v1/chat/completions"),
            ("/v1/chat/completions", f"http://127.0.0.1:{port}/v1/chat/completions"),
        ):
            samples = []
            for i in range(requests + 20):
                started = time.perf_counter_ns()
                response = await client.post(url, json=body, headers=headers)
                response.raise_for_status()
                if i >= 20:
                    samples.append(time.perf_counter_ns() - started)
            results[name] = samples
    async with await _open(f"ws://127.0.0.1:{port}/ws/", key) as ws:
        samples = []
        for i in range(requests + 20):
            started = time.perf_counter_ns()
            if hops:
                hop_marks.mark(i, "client.sent")
            await ws.send(json.dumps({"type": "query", "id": i, **body}))
            while (reply := json.loads(await ws.recv()))["type"] not in {"response", "error"}:
                pass
            if hops:
                hop_marks.mark(i, "client.received")
            assert reply["type"] == "response", reply
            if i >= 20:
                samples.append(time.perf_counter_ns() - started)
        results["WebSocket query"] = samples
    return {
        name: {"p50": _percentile(s, 0.5), "p90": _percentile(s, 0.9), "p99": _percentile(s, 0.99)}
        for name, s in results.items()
    }


def run(
    env: Environment,
    servers: list[str],
    requests: int,
    steps: tuple[int, ...],
    clients: int = CLIENT_PROCESSES,
    traced: bool = False,
    deflate: bool = False,
    hops: bool = False,
) -> dict:
    report: dict[str, dict] = {"servers": {}}
    for kind in servers:
        server = env.server(kind, 1, traced=traced)
        try:
            pids = server_pids(server)
            result: dict = {}
            report["servers"][kind] = result
            if requests:
                result["round_trip_ms"] = uvloop.run(
                    query_round_trips(server.port, env.upstream.port, env.key, requests, hops)
                )
            if hops:
                result["hops_ms"] = hop_breakdown(Path(os.environ["BENCH_HOPS_DIR"]), first=20)
                continue
            snapshot = _snapshots(server, pids[-1]) if traced else None
            result["idle"] = idle_connections(
                server.port, env.key, pids, steps, clients, snapshot, deflate
            )
        finally:
            env.stop(server)
    return report


def hop_breakdown(directory: Path, first: int) -> dict:
    """Each hop's p50 and p99 (ms) over the queries from id ``first`` on (the warm-up left
    out), from the marks every process left under ``directory``."""
    marks: dict[str, dict[str, int]] = {}
    for log in directory.glob("*.log"):
        for line in log.read_text().splitlines():
            ask_id, event, at = line.split()
            marks.setdefault(ask_id, {})[event] = int(at)
    asks = [m for ask_id, m in marks.items() if ask_id.isdigit() and int(ask_id) >= first]
    breakdown = {}
    everything = ("round trip", "client.sent", "client.received")
    for label, start, end in (*hop_marks.HOPS, everything, *hop_marks.ASIDE):
        spans = [m[end] - m[start] for m in asks if start in m and end in m]
        if spans:
            breakdown[label] = {
                "p50": _percentile(spans, 0.5),
                "p99": _percentile(spans, 0.99),
                "queries": len(spans),
            }
    return breakdown


def _snapshots(server, pid: int) -> Callable[[], None]:
    """Ask the traced server for a tracemalloc snapshot, and wait until it is written."""

    def snapshot() -> None:
        before = server.output().count("tracemalloc snapshot written")
        os.kill(pid, signal.SIGUSR1)
        deadline = time.monotonic() + 600
        while server.output().count("tracemalloc snapshot written") == before:
            if time.monotonic() > deadline:
                raise RuntimeError("the traced server wrote no snapshot")
            time.sleep(0.5)

    return snapshot


def render(report: dict) -> str:
    lines = []
    for kind, result in report["servers"].items():
        lines += [
            f"WebSocket benchmark on {kind} (one process)",
            "",
        ]
        if "round_trip_ms" in result:
            lines.append("Query round trip (ms, one client, sequential)")
            lines.append(f"{'':24}{'p50':>9}{'p90':>9}{'p99':>9}")
            base = result["round_trip_ms"]["/v1/chat/completions"]
            for name, m in result["round_trip_ms"].items():
                lines.append(f"{name:24}{m['p50']:>9.3f}{m['p90']:>9.3f}{m['p99']:>9.3f}")
            ws = result["round_trip_ms"]["WebSocket query"]
            lines += [
                f"WebSocket query adds {ws['p50'] - base['p50']:.2f} ms at p50 and "
                f"{ws['p99'] - base['p99']:.2f} ms at p99 over /v1/chat/completions",
                "",
            ]
        if "hops_ms" in result:
            lines.append("A query's hops (ms; instrumented processes, bench/hops.py)")
            lines.append(f"{'':40}{'p50':>9}{'p99':>9}")
            for name, m in result["hops_ms"].items():
                lines.append(f"{name:40}{m['p50']:>9.3f}{m['p99']:>9.3f}")
            lines.append("")
            continue
        lines += [
            "Idle connections (memory: the server's RSS growth over 10 warm connections)",
            f"{'open':>8}{'failed':>8}{'answering':>11}{'RSS MiB':>9}{'KiB/conn':>10}{'open s':>8}",
        ]
        for step in result["idle"]:
            lines.append(
                f"{step['connections']:>8}{step['failed_to_open']:>8}{step['sample_answering']:>11}"
                f"{step['rss_mib']:>9}{step['kib_per_connection']:>10}{step['seconds_to_open']:>8}"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--servers", default="daphne,uvicorn")
    parser.add_argument("--requests", type=int, default=300, help="round trips per path (0: none)")
    parser.add_argument("--steps", default=",".join(map(str, STEPS)), help="idle connections")
    parser.add_argument("--clients", type=int, default=CLIENT_PROCESSES, help="client processes")
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="trace the server's allocations: a snapshot at the baseline and after each step, "
        "under var/bench/tracemalloc (bench/traced_server.py)",
    )
    parser.add_argument(
        "--deflate",
        action="store_true",
        help="idle clients offer permessage-deflate, as browsers do",
    )
    parser.add_argument(
        "--hops",
        action="store_true",
        help="time each hop of a query (server and worker under bench/hops.py); no idle step",
    )
    args = parser.parse_args(argv)
    steps = tuple(int(s) for s in args.steps.split(","))
    open_files = raise_open_files_limit(OPEN_FILES)
    if max(steps) > open_files - SPARE_FILES:
        # Without CAP_SYS_RESOURCE the hard limit stays where it is (20,000 in some containers).
        print(
            f"Open files are limited to {open_files} per process here: steps above "
            f"{open_files - SPARE_FILES} connections are cut to it."
        )
        steps = tuple(sorted({min(step, open_files - SPARE_FILES) for step in steps}))
    if args.hops:
        os.environ["BENCH_HOPS_DIR"] = tempfile.mkdtemp(prefix="orchestra-hops-")
    with environment("bench.hops" if args.hops else None) as env:
        servers = [s for s in args.servers.split(",") if s]
        report = run(
            env,
            servers,
            args.requests,
            steps,
            args.clients,
            args.tracemalloc,
            args.deflate,
            args.hops,
        )
    print(render(report))
    save_report("websocket", report)
    return report


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
