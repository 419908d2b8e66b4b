"""Benchmark of ``/v1/chat/completions`` against the fake upstream, on this machine, in one run.

The upstream is measured directly first (the baseline), then the gateway under each ASGI
server; "added" is gateway minus upstream at the same percentile. Targets (issue 3, 2 cores):
added latency at 1 client <= 1 ms p50 and <= 5 ms p99; >= 1,700 req/s at 50 clients with no
errors; streaming adds <= 5 ms to the time to first token.
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

from tests.support.processes import REPO_ROOT

from .environment import Environment, environment

SERVERS = {"daphne": ("daphne", 1), "uvicorn": ("uvicorn", 1), "uvicorn-2": ("uvicorn", 2)}
TARGETS = {"added_p50_ms": 1.0, "added_p99_ms": 5.0, "rps_50": 1700, "added_ttft_ms": 5.0}


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


def measure(port: int, key: str, clients: int, stream: bool, seconds: float) -> Measurement:
    """Load from separate processes (two for many clients, so the client is not the limit)."""
    processes = 2 if clients >= 10 else 1
    command = [
        sys.executable, "-m", "bench.loadgen", "--port", str(port), "--key", key,
        "--clients", str(clients // processes), "--seconds", str(seconds),
    ] + (["--stream"] if stream else [])  # fmt: skip
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


def measure_all(port: int, key: str, seconds: float, concurrency: list[int]) -> dict:
    return {
        mode: {
            str(c): asdict(measure(port, key, c, mode == "stream", seconds)) for c in concurrency
        }
        for mode in ("plain", "stream")
    }


def run(env: Environment, servers: list[str], seconds: float, concurrency: list[int]) -> dict:
    report = {
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


def render(report: dict) -> str:
    machine = report["machine"]
    lines = [
        f"Gateway benchmark: {machine['cpus']} cores, Python {machine['python']}, "
        f"{machine['database']} + {machine['redis']}, daphne {machine['daphne']}, "
        f"uvicorn {machine['uvicorn']}, {report['seconds_per_measurement']} s per measurement",
        "",
        "POST /v1/chat/completions, not streaming (latency in ms; added = minus the upstream)",
        f"{'':14}{'clients':>8}{'req/s':>9}{'p50':>9}{'p90':>9}{'p99':>9}"
        f"{'errors':>8}{'added p50':>11}{'added p99':>11}",
    ]
    base = report["upstream"]
    for name, results in [("upstream", base), *report["servers"].items()]:
        for clients, m in results["plain"].items():
            reference = base["plain"][clients]
            added = (
                (m["p50"] - reference["p50"], m["p99"] - reference["p99"])
                if name != "upstream" else (None, None)
            )  # fmt: skip
            lines.append(
                f"{name:14}{clients:>8}{m['rps']:>9.0f}{_ms(m['p50']):>9}{_ms(m['p90']):>9}"
                f"{_ms(m['p99']):>9}{m['errors']:>8}{_ms(added[0]):>11}{_ms(added[1]):>11}"
            )
    lines += [
        "",
        "Streaming, time to first content token (ms)",
        f"{'':14}{'clients':>8}{'req/s':>9}{'ttft p50':>10}{'ttft p99':>10}{'added p50':>11}"
        f"{'added p99':>11}{'errors':>8}",
    ]
    for name, results in [("upstream", base), *report["servers"].items()]:
        for clients, m in results["stream"].items():
            reference = base["stream"][clients]
            added = (
                (m["ttft_p50"] - reference["ttft_p50"], m["ttft_p99"] - reference["ttft_p99"])
                if name != "upstream" and m["ttft_p50"] is not None else (None, None)
            )  # fmt: skip
            lines.append(
                f"{name:14}{clients:>8}{m['rps']:>9.0f}{_ms(m['ttft_p50']):>10}"
                f"{_ms(m['ttft_p99']):>10}{_ms(added[0]):>11}{_ms(added[1]):>11}{m['errors']:>8}"
            )
    lines += ["", "Targets (issue 3): " + _verdicts(report)]
    return "\n".join(lines)


def _verdict(label: str, value: float, unit: str, ok: bool) -> str:
    return f"{label} {value:.2f}{unit} {'ok' if ok else 'MISSED'}"


def _verdicts(report: dict) -> str:
    base = report["upstream"]
    verdicts = []
    for name, results in report["servers"].items():
        one, many = results["plain"].get("1"), results["plain"].get("50")
        stream_one = results["stream"].get("1")
        checks = []
        if one:
            added50 = one["p50"] - base["plain"]["1"]["p50"]
            added99 = one["p99"] - base["plain"]["1"]["p99"]
            checks.append(_verdict("added p50", added50, " ms", added50 <= TARGETS["added_p50_ms"]))
            checks.append(_verdict("added p99", added99, " ms", added99 <= TARGETS["added_p99_ms"]))
        if many:
            ok = many["rps"] >= TARGETS["rps_50"] and many["errors"] == 0
            checks.append(_verdict(f"{many['errors']} errors,", many["rps"], " req/s at 50", ok))
        if stream_one and stream_one["ttft_p50"] is not None:
            added = stream_one["ttft_p50"] - base["stream"]["1"]["ttft_p50"]
            checks.append(_verdict("ttft added", added, " ms", added <= TARGETS["added_ttft_ms"]))
        verdicts.append(f"\n  {name}: " + "; ".join(checks))
    return "".join(verdicts)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=6.0, help="per measurement")
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"of {', '.join(SERVERS)}")
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
