"""Call records with known values, stored through the recorder's batch path."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from apps.providers.llm.recording.records import CallRecord, write_records

PROVIDERS = {"alpha": ["gpt-a", "gpt-b"], "beta": ["claude-c"], "gamma": ["embed-d"]}
STATUSES = ["success"] * 8 + ["error", "cancelled"]


def hour_now() -> datetime:
    return timezone.now().replace(minute=0, second=0, microsecond=0)


def call(rng: random.Random, created_at: datetime, **fields: Any) -> dict[str, Any]:
    provider = rng.choice(list(PROVIDERS))
    entry_point = rng.choice(["openai", "openai", "query", "build", "agent", "internal"])
    streamed = rng.random() < 0.4
    return {
        "id": str(uuid.uuid4()),
        "created_at": created_at.isoformat(),
        "entry_point": entry_point,
        "provider_name": provider,
        "model_name": rng.choice(PROVIDERS[provider]),
        "endpoint": "embeddings" if provider == "gamma" else rng.choice(["chat", "responses"]),
        "status": rng.choice(STATUSES),
        "input_tokens": rng.randint(0, 5000),
        "output_tokens": rng.randint(0, 2000),
        "cost": str(Decimal(rng.randint(0, 10**7)) / Decimal(10**8)),
        # Log-uniform from 0.5 ms to 8 minutes: the buckets, the lowest edge included.
        "latency_ms": round(10 ** rng.uniform(-0.3, 5.7), 3),
        "time_to_first_token_ms": round(10 ** rng.uniform(0, 4), 3) if streamed else None,
        "stream": streamed,
        "user_id": rng.choice([None, 1, 2, 3]),
        "api_key_id": rng.choice([None, 11, 12]),
        "workspace_id": rng.choice([None, 21, 22]),
        "end_user": rng.choice(["", "", "alice", "bob", "carol@example.com"]),
        "tags": rng.choice([{}, {"team": "growth"}, {"team": "search", "feature": "ask"},
                            {"feature": "ask"}]),
        "experiment_variant_id": rng.choice([None, None, None, 5]),
        "build_id": 7 if entry_point == "build" else None,
        "agent_id": 8 if entry_point == "agent" else None,
        **fields,
    }  # fmt: skip


def store(calls: list[dict[str, Any]], *, final: bool = True, batch: int = 500) -> None:
    records = [CallRecord(c, [], final=final) for c in calls]
    for index in range(0, len(records), batch):
        write_records(records[index : index + batch])


def generate(count: int, *, hours: int, seed: int = 20) -> list[dict[str, Any]]:
    """``count`` calls spread over the last ``hours`` closed hours and the open one."""
    rng = random.Random(seed)
    start = hour_now() - timedelta(hours=hours)
    span = (timezone.now() - start).total_seconds()
    return [call(rng, start + timedelta(seconds=rng.uniform(0, span))) for _ in range(count)]
