"""Benchmark of the OpenAI-compatible gateway against the fake upstream, in one run here.

Measured in one run, under the same server settings: the upstream itself; **the floor**
(``floor.py``: a bare ASGI app forwarding each request through one pooled aiohttp session,
the least a Python gateway can cost) under uvicorn with 2 workers; and the gateway under
uvicorn with 2 workers (production) and daphne (``make run``). Each mode is measured at 1 and
50 clients: chat completions, chat completions streamed (time to the first content token) and
embeddings. Figures are reported as ratios of the floor's, since absolute numbers drift on a
shared machine. Targets (issue 9, 2 cores, gateway under uvicorn with 2 workers): p99 at 50
clients at most 3x the floor's, throughput at least half the floor's, and the latency added to
the upstream's p50 at one client at most 1 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from tests.support.processes import REPO_ROOT

from .environment import Environment, environment

SERVERS = {
    "floor": ("floor", 2),
    "uvicorn-2": ("uvicorn", 2),
    "uvicorn": ("uvicorn", 1),
    "daphne": ("daphne", 1),
}
DEFAULT_SERVERS = "floor,uvicorn-2,daphne"
GATEWAY = "uvicorn-2"
MODES = {
    "chat": ("/v1/chat/completions", False),
    "stream": ("/v1/chat/completions", True),
    "embeddings": ("/v1/embeddings", False),
}
TARGETS = {"p99_50_over_floor": 3.0, "rps_50_over_floor": 0.5, "added_p50_ms": 1.0}


@dataclass
class Measurement:
    clients: int
    rps: float
    p50: float
    p90: float
    p99: float
    errors: int
    ttft_p50: float | None
    ttft_p99: float | None


def _percentile(values: list[int], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1e6 if ordered else 0.0


def measure(
    port: int, key: str, clients: int, path: str, stream: bool, seconds: float
) -> Measurement:
    """Load from separate processes (two for many clients, so the client is not the limit)."""
    processes = 2 if clients >= 10 else 1
    command = [
        sys.executable,
        "-m",
        "bench.loadgen",
        "--port",
        str(port),
        "--key",
        key,
        "--clients",
        str(clients // processes),
        "--seconds",
        str(seconds),
        "--path",
        path,
    ] + (["--stream"] if stream else [])
    runs = [
        subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    results = [json.loads(run.communicate()[0]) for run in runs]
    latencies = [value for result in results for value in result["latencies"]]
    first_tokens = [value for result in results for value in result["first_tokens"]]
    seconds_measured = max(result["seconds"] for result in results)
    return Measurement(
        clients=clients,
        rps=round(len(latencies) / seconds_measured, 1),
        p50=_percentile(latencies, 0.50),
        p90=_percentile(latencies, 0.90),
        p99=_percentile(latencies, 0.99),
        errors=sum(result["errors"] for result in results),
        ttft_p50=_percentile(first_tokens, 0.50) if first_tokens else None,
        ttft_p99=_percentile(first_tokens, 0.99) if first_tokens else None,
    )


def measure_all(port: int, key: str, seconds: float, concurrency: list[int]) -> dict[str, Any]:
    return {
        mode: {str(c): asdict(measure(port, key, c, path, stream, seconds)) for c in concurrency}
        for mode, (path, stream) in MODES.items()
    }


def run(env: Environment, servers: list[str], seconds: float, concurrency: list[int]) -> dict:
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "daphne": version("daphne"),
            "uvicorn": version("uvicorn"),
            "database": env.database,
            "redis": env.redis,
        },
        "seconds_per_measurement": seconds,
        "upstream": measure_all(env.upstream.port, env.key, seconds, concurrency),
        "servers": {},
    }
    for name in servers:
        kind, workers = SERVERS[name]
        server = env.server(kind, workers)
        try:
            report["servers"][name] = measure_all(server.port, env.key, seconds, concurrency)
        finally:
            env.stop(server)
    return report


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:7.3f}"


def _ratio(value: float | None, base: float | None) -> str:
    return "-" if not value or not base else f"{value / base:5.2f}x"


def render(report: dict) -> str:
    machine = report["machine"]
    base = report["upstream"]
    floor = report["servers"].get("floor")
    lines = [
        f"Gateway benchmark: {machine['cpus']} cores, Python {machine['python']}, "
        f"{machine['database']} + {machine['redis']}, daphne {machine['daphne']}, "
        f"uvicorn {machine['uvicorn']}, {report['seconds_per_measurement']} s per measurement",
        "Latency in ms; 'added' = minus the upstream at the same percentile; 'x floor' = divided "
        "by the floor's figure in this run.",
    ]
    for mode in MODES:
        streaming = mode == "stream"
        lines += [
            "",
            f"{mode}{' (time to first content token)' if streaming else ''}",
            f"{'':11}{'clients':>8}{'req/s':>8}{'p50':>9}{'p99':>9}{'errors':>7}"
            f"{'added p50':>10}{'req/s':>8}{'p99':>8}   (x floor)",
        ]
        for name, results in [("upstream", base), *report["servers"].items()]:
            for clients, m in results[mode].items():
                p50, p99 = (m["ttft_p50"], m["ttft_p99"]) if streaming else (m["p50"], m["p99"])
                reference = base[mode][clients]
                base_p50 = reference["ttft_p50"] if streaming else reference["p50"]
                added = None if name == "upstream" or p50 is None else p50 - base_p50
                f = floor[mode][clients] if floor and name not in ("upstream", "floor") else None
                floor_p99 = (f["ttft_p99"] if streaming else f["p99"]) if f else None
                lines.append(
                    f"{name:11}{clients:>8}{m['rps']:>8.0f}{_ms(p50):>9}{_ms(p99):>9}"
                    f"{m['errors']:>7}{_ms(added):>10}"
                    f"{_ratio(m['rps'], f['rps'] if f else None):>8}{_ratio(p99, floor_p99):>8}"
                )
    lines += ["", "Targets (issue 9, gateway = uvicorn with 2 workers): " + _verdicts(report)]
    return "\n".join(lines)


def _verdict(label: str, value: float, unit: str, ok: bool) -> str:
    return f"{label} {value:.2f}{unit} {'ok' if ok else 'MISSED'}"


def _verdicts(report: dict) -> str:
    gateway, floor = report["servers"].get(GATEWAY), report["servers"].get("floor")
    if not gateway or not floor:
        return f"need both {GATEWAY} and floor"
    base = report["upstream"]
    verdicts = []
    for mode in MODES:
        checks = []
        one, many, floor_many = (
            gateway[mode].get("1"),
            gateway[mode].get("50"),
            floor[mode].get("50"),
        )
        if one and mode != "stream":
            added = one["p50"] - base[mode]["1"]["p50"]
            checks.append(_verdict("added p50", added, " ms", added <= TARGETS["added_p50_ms"]))
        if many and floor_many:
            key = "ttft_p99" if mode == "stream" else "p99"
            p99 = many[key] / floor_many[key]
            rps = many["rps"] / floor_many["rps"]
            checks.append(
                _verdict("p99 at 50", p99, "x floor", p99 <= TARGETS["p99_50_over_floor"])
            )
            ok = rps >= TARGETS["rps_50_over_floor"] and many["errors"] == 0
            checks.append(_verdict(f"{many['errors']} errors, req/s at 50", rps, "x floor", ok))
        verdicts.append(f"\n  {mode}: " + "; ".join(checks))
    return "".join(verdicts)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=6.0, help="per measurement")
    parser.add_argument("--servers", default=DEFAULT_SERVERS, help=f"of {', '.join(SERVERS)}")
    parser.add_argument("--concurrency", default="1,50")
    args = parser.parse_args(argv)
    servers = [name for name in args.servers.split(",") if name]
    concurrency = [int(c) for c in args.concurrency.split(",")]
    with environment() as env:
        report = run(env, servers, args.seconds, concurrency)
    print(render(report))
    out = REPO_ROOT / "var" / "bench" / f"gateway-{time.strftime('%Y%m%d-%H%M%S')}.json"
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2))
    print(f"\nFigures saved to {out}")
    return report


if __name__ == "__main__":
    main()
