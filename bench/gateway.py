"""Benchmark of the OpenAI-compatible gateway against the fake upstream, in one run here.

Measured in one run: the upstream itself; **the lean floor** (``lean.py``: a bare pass-through
on raw asyncio protocols and httptools, server and pooled client side, on uvloop, 2 worker
processes: the least a Python gateway can cost) and **the aiohttp floor** (``floor.py``: a bare
ASGI app forwarding each request through one pooled aiohttp session, under uvicorn with 2
workers), the two references; and the gateway under uvicorn with 2 workers (production),
granian with 2 workers (``granian-2``, on request) and daphne (``make run``). Each mode is
measured at 1 and 50 clients: chat completions, chat completions streamed (time to the first
content token) and embeddings. Figures are reported as ratios of the lean floor's ("x lean")
and of the aiohttp floor's ("x floor"), since absolute numbers drift on a shared machine; after
each gateway server, the call records stored are counted against the requests the upstream
received through it (none may be lost), and for each of its measurements, each web process's
event-loop lag p99 is read from the process's own histogram file in the metrics directory
(``Environment.loop_lag``; ``/metrics`` sums the processes). ``--worker-nice`` runs the Celery
worker at a lower priority.

Targets (issue 24, 2 cores, gateway with 2 workers), against the lean floor: at 50 clients
throughput at least half its, p99 (for streams, time to the first token's p99) at most 2x its;
at one client, at most 0.15 ms added to the upstream's p50.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from tests.support.processes import REPO_ROOT

from .environment import Environment, environment, save_report

SERVERS = {
    "lean": ("lean", 2),
    "floor": ("floor", 2),
    "uvicorn-2": ("uvicorn", 2),
    "granian-2": ("granian", 2),
    "uvicorn": ("uvicorn", 1),
    "daphne": ("daphne", 1),
}
REFERENCES = ("lean", "floor")
DEFAULT_SERVERS = "lean,floor,uvicorn-2,daphne"
MODES = {
    "chat": ("/v1/chat/completions", False),
    "stream": ("/v1/chat/completions", True),
    "embeddings": ("/v1/embeddings", False),
}
TARGETS = {"p99_50_over_lean": 2.0, "rps_50_over_lean": 0.5, "added_p50_ms": 0.15}


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
    # Gateway servers: each web process's event-loop lag p99 (s) and samples, by pid.
    loop_lag_p99: dict[str, float | None] | None = None
    loop_lag_samples: dict[str, int] | None = None


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


def histogram_quantile(quantile: float, buckets: dict[float, float]) -> float | None:
    """``quantile`` of a histogram given as cumulative counts by bucket bound, interpolated
    within its bucket as Prometheus' ``histogram_quantile`` does (beyond the last finite bound:
    that bound)."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0
    if not total:
        return None
    rank = quantile * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def loop_lag_p99(
    before: dict[int, dict[float, float]], after: dict[int, dict[float, float]]
) -> tuple[dict[str, float | None], dict[str, int]]:
    """Each web process's lag p99 and samples between two readings of ``Environment.loop_lag``
    (processes that took no sample meanwhile, earlier servers', left out)."""
    p99s, samples = {}, {}
    for pid, buckets in after.items():
        earlier = before.get(pid, {})
        diff = {bound: count - earlier.get(bound, 0.0) for bound, count in buckets.items()}
        taken = int(diff.get(math.inf, 0))
        if taken:
            p99s[str(pid)], samples[str(pid)] = histogram_quantile(0.99, diff), taken
    return p99s, samples


def measure_all(
    port: int,
    key: str,
    seconds: float,
    concurrency: list[int],
    loop_lag: Callable[[], dict[int, dict[float, float]]] | None = None,
) -> dict[str, Any]:
    """Every mode at each concurrency; ``loop_lag`` (a gateway's): the web processes' lag
    histograms, read before and after each measurement (its warm-up included)."""
    results: dict[str, Any] = {}
    for mode, (path, stream) in MODES.items():
        results[mode] = {}
        for clients in concurrency:
            before = loop_lag() if loop_lag else {}
            measurement = measure(port, key, clients, path, stream, seconds)
            if loop_lag:
                measurement.loop_lag_p99, measurement.loop_lag_samples = loop_lag_p99(
                    before, loop_lag()
                )
            results[mode][str(clients)] = asdict(measurement)
    return results


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def run(env: Environment, servers: list[str], seconds: float, concurrency: list[int]) -> dict:
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "daphne": version("daphne"),
            "uvicorn": version("uvicorn"),
            "granian": _version("granian"),
            "database": env.database,
            "redis": env.redis,
        },
        "seconds_per_measurement": seconds,
        "upstream": measure_all(env.upstream.port, env.key, seconds, concurrency),
        "servers": {},
        "records": {},
    }
    for name in servers:
        kind, workers = SERVERS[name]
        server = env.server(kind, workers)
        try:
            calls_before = env.upstream.stats()["requests"]
            records_before = env.call_records()
            worker_cpu_before = env.worker_cpu_seconds()
            loop_lag = None if name in REFERENCES else env.loop_lag
            report["servers"][name] = measure_all(
                server.port, env.key, seconds, concurrency, loop_lag
            )
            if name not in REFERENCES:
                calls = env.upstream.stats()["requests"] - calls_before
                stored = env.wait_for_records(records_before + calls) - records_before
                report["records"][name] = {
                    "calls": calls,
                    "records": stored,
                    "worker_cpu_seconds": round(env.worker_cpu_seconds() - worker_cpu_before, 2),
                }
        finally:
            env.stop(server)
    return report


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:7.3f}"


def _ratio(value: float | None, base: float | None) -> str:
    return "-" if not value or not base else f"{value / base:5.2f}x"


def _p50_p99(m: dict, streaming: bool) -> tuple[float | None, float | None]:
    return (m["ttft_p50"], m["ttft_p99"]) if streaming else (m["p50"], m["p99"])


def render(report: dict) -> str:
    machine = report["machine"]
    base = report["upstream"]
    references = {name: report["servers"].get(name) for name in REFERENCES}
    lines = [
        f"Gateway benchmark: {machine['cpus']} cores, Python {machine['python']}, "
        f"{machine['database']} + {machine['redis']}, daphne {machine['daphne']}, "
        f"uvicorn {machine['uvicorn']}, granian {machine.get('granian', '-')}, "
        f"{report['seconds_per_measurement']} s per measurement",
        "Latency in ms; 'added' = minus the upstream at the same percentile; 'x lean' = divided "
        "by the lean floor's figure in this run, 'x floor' by the aiohttp floor's.",
    ]
    for mode in MODES:
        streaming = mode == "stream"
        lines += [
            "",
            f"{mode}{' (time to first content token)' if streaming else ''}",
            f"{'':11}{'clients':>8}{'req/s':>8}{'p50':>9}{'p99':>9}{'errors':>7}"
            f"{'added p50':>10}{'req/s':>8}{'p99':>8}   (x lean){'req/s':>8}{'p99':>8}   (x floor)",
        ]
        for name, results in [("upstream", base), *report["servers"].items()]:
            for clients, m in results[mode].items():
                p50, p99 = _p50_p99(m, streaming)
                base_p50 = _p50_p99(base[mode][clients], streaming)[0]
                added = (
                    None
                    if name == "upstream" or p50 is None or base_p50 is None
                    else p50 - base_p50
                )
                line = (
                    f"{name:11}{clients:>8}{m['rps']:>8.0f}{_ms(p50):>9}{_ms(p99):>9}"
                    f"{m['errors']:>7}{_ms(added):>10}"
                )
                for reference, figures in references.items():
                    f = figures[mode][clients] if figures and name != reference else None
                    f = None if name == "upstream" else f
                    ref_p99 = _p50_p99(f, streaming)[1] if f else None
                    line += f"{_ratio(m['rps'], f['rps'] if f else None):>8}"
                    line += f"{_ratio(p99, ref_p99):>8}" + " " * 11
                lines.append(line.rstrip())
    if report.get("records"):
        lines += ["", "Call records (each gateway server: the upstream's requests through it):"]
        for name, counts in report["records"].items():
            lost = counts["calls"] - counts["records"]
            lines.append(
                f"  {name}: {counts['calls']} calls, {counts['records']} records, {lost} lost"
                f" {'ok' if lost == 0 else 'MISSED'}; the Celery worker used"
                f" {counts.get('worker_cpu_seconds', 0):.1f} s of CPU meanwhile"
            )
    lags = _loop_lags(report)
    if lags:
        nice = report.get("worker_nice")
        lines += [
            "",
            "Event-loop lag p99 of each web process, ms (its samples), at each concurrency"
            f"{f'; Celery worker at nice {nice}' if nice else ''}:",
            *lags,
        ]
    for name in report["servers"]:
        if name not in REFERENCES:
            lines += ["", f"Targets (issue 24) for {name}, against the lean floor: "]
            lines[-1] += _verdicts(report, name)
    return "\n".join(lines)


def _loop_lags(report: dict) -> list[str]:
    lines = []
    for name, results in report["servers"].items():
        for mode, by_clients in results.items():
            for clients, m in by_clients.items():
                if not m.get("loop_lag_p99"):
                    continue
                figures = [
                    f"{'-' if p99 is None else f'{p99 * 1000:.1f}'} ({m['loop_lag_samples'][pid]})"
                    for pid, p99 in sorted(m["loop_lag_p99"].items())
                ]
                lines.append(f"  {name:11}{mode:11}{clients:>3} clients: {', '.join(figures)}")
    return lines


def _verdict(label: str, value: float, unit: str, ok: bool) -> str:
    return f"{label} {value:.2f}{unit} {'ok' if ok else 'MISSED'}"


def _verdicts(report: dict, name: str) -> str:
    gateway, lean = report["servers"][name], report["servers"].get("lean")
    if not lean:
        return "need the lean floor (--servers lean,...)"
    base = report["upstream"]
    verdicts = []
    for mode in MODES:
        checks = []
        one, many, lean_many = gateway[mode].get("1"), gateway[mode].get("50"), lean[mode].get("50")
        if one and mode != "stream":
            added = one["p50"] - base[mode]["1"]["p50"]
            checks.append(_verdict("added p50", added, " ms", added <= TARGETS["added_p50_ms"]))
        if many and lean_many:
            key = "ttft_p99" if mode == "stream" else "p99"
            p99 = many[key] / lean_many[key]
            rps = many["rps"] / lean_many["rps"]
            label = "TTFT p99 at 50" if mode == "stream" else "p99 at 50"
            checks.append(_verdict(label, p99, "x lean", p99 <= TARGETS["p99_50_over_lean"]))
            ok = rps >= TARGETS["rps_50_over_lean"] and many["errors"] == 0
            checks.append(_verdict(f"{many['errors']} errors, req/s at 50", rps, "x lean", ok))
        verdicts.append(f"\n  {mode}: " + "; ".join(checks))
    return "".join(verdicts)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=6.0, help="per measurement")
    parser.add_argument("--servers", default=DEFAULT_SERVERS, help=f"of {', '.join(SERVERS)}")
    parser.add_argument("--concurrency", default="1,50")
    parser.add_argument(
        "--worker-nice", type=int, default=0, help="run the Celery worker at this niceness"
    )
    args = parser.parse_args(argv)
    servers = [name for name in args.servers.split(",") if name]
    concurrency = [int(c) for c in args.concurrency.split(",")]
    with environment(worker_nice=args.worker_nice) as env:
        report = run(env, servers, args.seconds, concurrency)
    report["worker_nice"] = args.worker_nice
    print(render(report))
    save_report("gateway", report)
    return report


if __name__ == "__main__":
    main()
