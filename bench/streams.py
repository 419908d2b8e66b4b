"""1,000 concurrent streams on one node: the gateway against the lean floor, same load.

The fake upstream streams ``--tokens`` content tokens (20), one every ``--pace-ms`` (100 ms),
so a stream lasts about two seconds whoever relays it. ``--streams`` clients (1,000; one
keep-alive connection each, split over two client processes) start evenly over the first
stream's length and then stream back to back until ``--seconds`` (6) have passed, so about
1,000 streams are open at once for most of the run. Measured, in one run: the upstream itself;
the lean floor (``lean.py``, 2 workers) on ``/v1/chat/completions``; and the gateway (uvicorn
with 2 workers, production; ``--servers`` for others) on ``/v1/chat/completions`` streamed and
on the SSE API (``/api/streaming/chat``). Printed per target: streams, failures (a connection
error, a status other than 200, or a stream without every token: must be 0), the most streams
open at once, time to the first token (p50, p99), tokens per second per stream (median and the
slowest 1%), the ratio of its first-token p99 to the lean floor's (target at most 2x), and for
the gateway the call records stored against the requests the upstream received (0 lost).

``python -m bench.streams [--streams 1000] [--seconds 6] [--servers uvicorn-2]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import time
from typing import Any

import uvloop

from tests.support.processes import REPO_ROOT

from .environment import Environment, environment, raise_open_files_limit, save_report
from .gateway import SERVERS

TOKEN = re.compile(rb'"content": ?"[^"]')
PATHS = {
    "v1": ("/v1/chat/completions", {"stream": True}),
    "sse": ("/api/streaming/chat", {}),
}
CLIENT_PROCESSES = 2
TARGET_TTFT_P99_OVER_LEAN = 2.0


# --- the client (its own process: ``python -m bench.streams --client ...``) ---------------------
def _request(path: str, key: str, extra: dict[str, Any]) -> bytes:
    body = json.dumps(
        {"model": "fake-model", "messages": [{"role": "user", "content": "hello"}], **extra}
    ).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _stream(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, int | None, int | None, int | str]:
    """One streamed request: (status, first token ns, last token ns, tokens), from the send; an
    answer that is not a stream gives the start of its body for tokens."""
    started = time.perf_counter_ns()
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    lowered = head.lower()
    first = last = None
    tokens = 0
    if b"content-length:" in lowered:
        length = int(lowered.split(b"content-length:")[1].split(b"\r\n")[0])
        body = await reader.readexactly(length)
        return status, None, None, body[:200].decode(errors="replace")
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        chunk = await reader.readexactly(size + 2)
        found = len(TOKEN.findall(chunk))
        if found:
            last = time.perf_counter_ns() - started
            first = first if first is not None else last
            tokens += found
        if status != 200:
            return status, None, None, chunk[:200].decode(errors="replace")
        if size == 0:
            return status, first, last, tokens


async def _client(
    port: int, request: bytes, delay: float, until: float, tokens: int, out: list
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.sleep(delay)
    try:
        while time.perf_counter() < until:
            began = time.time_ns()
            try:
                status, first, last, got = await _stream(reader, writer, request)
            except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
                out.append({"error": type(exc).__name__, "start": began, "end": time.time_ns()})
                return
            ok = status == 200 and got == tokens
            out.append(
                {
                    "error": None if ok else f"status {status}: {got} tokens"[:160],
                    "start": began,
                    "end": time.time_ns(),
                    "ttft": first,
                    "last": last,
                    "tokens": got if isinstance(got, int) else 0,
                }
            )
            if not ok:
                return
    finally:
        writer.close()


async def client_main(args: argparse.Namespace) -> list[dict]:
    path, extra = PATHS[args.path]
    request = _request(path, args.key, extra)
    out: list[dict] = []
    until = time.perf_counter() + args.seconds
    spread = args.ramp / max(args.streams, 1)
    await asyncio.gather(
        *(
            _client(args.port, request, i * spread, until, args.tokens, out)
            for i in range(args.streams)
        )
    )
    return out


# --- the run ----------------------------------------------------------------------------------
def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def load(port: int, key: str, path: str, args: argparse.Namespace) -> dict[str, Any]:
    """``args.streams`` clients from two processes; the figures of every stream they ran."""
    share = args.streams // CLIENT_PROCESSES
    ramp = args.tokens * args.pace_ms / 1000
    command = [
        sys.executable, "-m", "bench.streams", "--client", "--port", str(port), "--key", key,
        "--path", path, "--streams", str(share), "--seconds", str(args.seconds),
        "--ramp", str(ramp), "--tokens", str(args.tokens),
    ]  # fmt: skip
    runs = [
        subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(CLIENT_PROCESSES)
    ]
    streams = [s for run in runs for s in json.loads(run.communicate()[0] or "[]")]
    done = [s for s in streams if s["error"] is None]
    events = sorted(
        [(s["start"], 1) for s in streams] + [(s["end"], -1) for s in streams],
        key=lambda event: (event[0], event[1]),
    )
    open_now = peak = 0
    for _, step in events:
        open_now += step
        peak = max(peak, open_now)
    rates = [
        (s["tokens"] - 1) / ((s["last"] - s["ttft"]) / 1e9)
        for s in done
        if s["tokens"] > 1 and s["last"] > s["ttft"]
    ]
    ttfts = [s["ttft"] / 1e6 for s in done]
    errors: dict[str, int] = {}
    for s in streams:
        if s["error"]:
            errors[s["error"]] = errors.get(s["error"], 0) + 1
    return {
        "streams": len(streams),
        "failures": len(streams) - len(done),
        "errors": errors,
        "peak_open": peak,
        "ttft_p50": _percentile(ttfts, 0.50),
        "ttft_p99": _percentile(ttfts, 0.99),
        "tokens_per_s_p50": _percentile(rates, 0.50),
        "tokens_per_s_p1": _percentile(rates, 0.01),
    }


def run(env: Environment, args: argparse.Namespace) -> dict[str, Any]:
    env.upstream.configure(chunk_delay_ms=args.pace_ms, tokens=args.tokens)
    report: dict[str, Any] = {
        "streams": args.streams,
        "seconds": args.seconds,
        "pace_ms": args.pace_ms,
        "tokens": args.tokens,
        "open_files": raise_open_files_limit(50_000),
        "targets": {},
    }
    report["targets"]["upstream v1"] = load(env.upstream.port, env.key, "v1", args)
    for name in ["lean", *args.servers]:
        kind, workers = SERVERS[name]
        server = env.server(kind, workers)
        try:
            for path in ["v1"] if name == "lean" else list(PATHS):
                calls_before = env.upstream.stats()["requests"]
                records_before = env.call_records()
                figures = load(server.port, env.key, path, args)
                if name != "lean":
                    calls = env.upstream.stats()["requests"] - calls_before
                    stored = env.wait_for_records(records_before + calls) - records_before
                    figures["records"] = {"calls": calls, "stored": stored}
                report["targets"][f"{name} {path}"] = figures
        finally:
            env.stop(server)
    return report


def render(report: dict[str, Any]) -> str:
    lean = report["targets"].get("lean v1")
    lines = [
        f"{report['streams']} concurrent streams for {report['seconds']} s: {report['tokens']} "
        f"tokens each, one every {report['pace_ms']} ms from the upstream "
        f"({1000 / report['pace_ms']:.0f} tokens/s per stream); open files {report['open_files']}",
        "TTFT in ms from the request's send; tokens/s per stream between its first and last token"
        " (p50, slowest 1%); 'x lean' = TTFT p99 / the lean floor's.",
        "",
        f"{'':16}{'streams':>8}{'failed':>7}{'peak':>6}{'TTFT p50':>10}{'p99':>9}"
        f"{'tok/s p50':>10}{'p1':>7}{'x lean':>8}  records",
    ]
    for name, f in report["targets"].items():
        ratio = f["ttft_p99"] / lean["ttft_p99"] if lean and lean["ttft_p99"] else None
        verdict = ""
        if ratio is not None and not name.startswith(("lean", "upstream")):
            ok = ratio <= TARGET_TTFT_P99_OVER_LEAN and f["failures"] == 0
            verdict = " ok" if ok else " MISSED"
        records = f.get("records")
        lost = (
            f"{records['calls']} calls, {records['calls'] - records['stored']} lost"
            if records
            else ""
        )
        lines.append(
            f"{name:16}{f['streams']:>8}{f['failures']:>7}{f['peak_open']:>6}"
            f"{f['ttft_p50']:>10.1f}{f['ttft_p99']:>9.1f}{f['tokens_per_s_p50']:>10.2f}"
            f"{f['tokens_per_s_p1']:>7.2f}{(f'{ratio:.2f}x' if ratio else '-'):>8}{verdict:8}"
            f"{lost}"
        )
        if f["errors"]:
            lines.append(f"{'':16}failures: {f['errors']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=6.0, help="how long clients stream")
    parser.add_argument("--pace-ms", type=float, default=100.0, help="between upstream tokens")
    parser.add_argument("--tokens", type=int, default=20, help="content tokens per stream")
    parser.add_argument("--servers", default="uvicorn-2", help=f"gateway, of {', '.join(SERVERS)}")
    # the client processes'
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--key", default="", help=argparse.SUPPRESS)
    parser.add_argument("--path", default="v1", help=argparse.SUPPRESS)
    parser.add_argument("--ramp", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        json.dump(uvloop.run(client_main(args)), sys.stdout)
        return {}
    args.servers = [name for name in args.servers.split(",") if name]
    raise_open_files_limit(50_000)
    with environment() as env:
        report = run(env, args)
    print(render(report))
    save_report("streams", report)
    return report


if __name__ == "__main__":
    main()
