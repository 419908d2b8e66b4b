"""WebSocket benchmark: idle connections one process holds, and a query's round trip.

1. Idle connections: authenticated connections are opened against one server process in
   steps; after each step the process's resident memory is read from /proc and a sample of
   connections must still answer a ping. Memory per connection = growth / connections.
2. Round trip: sequential ``query`` messages over one WebSocket (handed to a Celery worker,
   answered through the channel layer) against ``/v1/chat/completions`` on the same server
   and the fake upstream directly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

import httpx
import uvloop
import websockets

from tests.support.processes import REPO_ROOT

from .environment import Environment, environment
from .gateway import _percentile

STEPS = (1000, 2500, 5000, 10000)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def server_pids(process) -> list[int]:
    """The server's own pid (daphne), or its workers' too (uvicorn)."""
    children = Path(f"/proc/{process.process.pid}/task/{process.process.pid}/children")
    kids = [int(pid) for pid in children.read_text().split()] if children.exists() else []
    return [process.process.pid, *kids]


async def _open(url: str, key: str) -> websockets.ClientConnection:
    return await websockets.connect(
        url,
        additional_headers={"Authorization": f"Bearer {key}"},
        compression=None,
        open_timeout=60,
        ping_interval=None,
        max_queue=4,
    )


async def idle_connections(
    port: int, key: str, pids: list[int], steps: tuple[int, ...]
) -> list[dict]:
    url = f"ws://127.0.0.1:{port}/ws/"
    connections: list = []
    baseline = sum(rss_kib(pid) for pid in pids)
    results = []
    for target in steps:
        started = time.perf_counter()
        failures = 0
        while len(connections) < target:
            batch = await asyncio.gather(
                *(_open(url, key) for _ in range(min(200, target - len(connections)))),
                return_exceptions=True,
            )
            failures += sum(isinstance(c, BaseException) for c in batch)
            connections += [c for c in batch if not isinstance(c, BaseException)]
            if failures > target // 10:
                break
        await asyncio.sleep(1.0)
        alive = await _pings(connections[:: max(1, len(connections) // 100)])
        rss = sum(rss_kib(pid) for pid in pids)
        results.append(
            {
                "connections": len(connections),
                "failed_to_open": failures,
                "sample_answering": alive,
                "rss_mib": round(rss / 1024, 1),
                "kib_per_connection": round((rss - baseline) / max(1, len(connections)), 1),
                "seconds_to_open": round(time.perf_counter() - started, 1),
            }
        )
        if failures > target // 10:
            break
    await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)
    return results


async def _pings(sample: list) -> str:
    answered = 0
    for connection in sample:
        try:
            await connection.send(json.dumps({"type": "ping"}))
            await asyncio.wait_for(connection.recv(), 5)
            answered += 1
        except Exception:
            pass
    return f"{answered}/{len(sample)}"


async def query_round_trips(port: int, upstream_port: int, key: str, requests: int) -> dict:
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
            await ws.send(json.dumps({"type": "query", "id": i, **body}))
            while (reply := json.loads(await ws.recv()))["type"] not in {"response", "error"}:
                pass
            assert reply["type"] == "response", reply
            if i >= 20:
                samples.append(time.perf_counter_ns() - started)
        results["WebSocket query"] = samples
    return {
        name: {"p50": _percentile(s, 0.5), "p90": _percentile(s, 0.9), "p99": _percentile(s, 0.99)}
        for name, s in results.items()
    }


def run(env: Environment, servers: list[str], requests: int, steps: tuple[int, ...]) -> dict:
    report: dict[str, dict] = {"servers": {}}
    for kind in servers:
        server = env.server(kind, 1)
        try:
            pids = server_pids(server)
            report["servers"][kind] = {
                "round_trip_ms": uvloop.run(
                    query_round_trips(server.port, env.upstream.port, env.key, requests)
                ),
                "idle": uvloop.run(idle_connections(server.port, env.key, pids, steps)),
            }
        finally:
            env.stop(server)
    return report


def render(report: dict) -> str:
    lines = []
    for kind, result in report["servers"].items():
        lines += [
            f"WebSocket benchmark on {kind} (one process)",
            "",
            "Query round trip (ms, one client, sequential)",
        ]
        lines.append(f"{'':24}{'p50':>9}{'p90':>9}{'p99':>9}")
        base = result["round_trip_ms"]["/v1/chat/completions"]
        for name, m in result["round_trip_ms"].items():
            lines.append(f"{name:24}{m['p50']:>9.3f}{m['p90']:>9.3f}{m['p99']:>9.3f}")
        ws = result["round_trip_ms"]["WebSocket query"]
        lines.append(
            f"WebSocket query adds {ws['p50'] - base['p50']:.2f} ms at p50 and "
            f"{ws['p99'] - base['p99']:.2f} ms at p99 over /v1/chat/completions"
        )
        lines += [
            "",
            "Idle connections",
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
    parser.add_argument("--requests", type=int, default=300, help="round trips per path")
    parser.add_argument("--steps", default=",".join(map(str, STEPS)), help="idle connections")
    args = parser.parse_args(argv)
    steps = tuple(int(s) for s in args.steps.split(","))
    with environment() as env:
        report = run(env, [s for s in args.servers.split(",") if s], args.requests, steps)
    print(render(report))
    out = REPO_ROOT / "var" / "bench" / f"websocket-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"Figures saved to {out}")
    return report


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
