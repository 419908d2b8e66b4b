"""Call records made up in bulk, for trying analytics and storage at scale (``seed_calls``).

Rows go straight into the tables, as the recorder would have stored them over the days asked
for: PostgreSQL through ``COPY`` in chunks (a million calls in about a minute), other databases
through ``bulk_create``. The figures follow what a gateway sees: a few models take most calls,
most calls succeed at the first attempt, tokens and latencies are log-normal, streams have a
time to first token, API calls carry a request id and a caller's key (and its workspace),
most carry an end user (a few take most calls) and caller tags. The transaction that stores a
chunk marks its hours for the analytics rollups (the call record hooks, as the recorder does);
``seed_calls`` then rolls them.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from django.contrib.auth import get_user_model
from django.db import connection, models, transaction
from django.utils import timezone

from apps.accounts.models import ApiKey
from apps.accounts.selectors import workspace_id_for
from apps.accounts.services import api_key_create, workspace_create
from apps.core.ids import uuid7

from .llm.recording.records import call_record_hooks_run
from .models import (
    CallStatus,
    Endpoint,
    EntryPoint,
    LlmCall,
    LlmCallAttempt,
    LlmModel,
    ModelMode,
    Provider,
    ProviderKind,
)

CHUNK = 20_000
# A fresh database gets these (provider, kind, base URL, [(model, mode, input and output price
# per million tokens)]), disabled so that nothing routes to them.
STARTER_CATALOGUE = [
    ("seed-openai", ProviderKind.OPENAI, "", [
        ("gpt-4o-mini", ModelMode.CHAT, "0.15", "0.60"),
        ("gpt-4o", ModelMode.CHAT, "2.50", "10.00"),
        ("text-embedding-3-small", ModelMode.EMBEDDING, "0.02", "0"),
    ]),
    ("seed-xai", ProviderKind.XAI, "", [("grok-3-mini", ModelMode.CHAT, "0.30", "0.50")]),
    ("seed-ollama", ProviderKind.OLLAMA, "http://127.0.0.1:11434/v1", [
        ("llama3.1:8b", ModelMode.CHAT, "0", "0"),
    ]),
]  # fmt: skip
STATUSES = [(CallStatus.SUCCESS, 0.955), (CallStatus.ERROR, 0.035), (CallStatus.CANCELLED, 0.01)]
ENTRY_POINTS = [
    (EntryPoint.OPENAI, 0.72), (EntryPoint.QUERY, 0.08), (EntryPoint.SSE, 0.07),
    (EntryPoint.WEBSOCKET, 0.04), (EntryPoint.BUILD, 0.06), (EntryPoint.AGENT, 0.03),
]  # fmt: skip
STREAMED = {EntryPoint.SSE: 1.0, EntryPoint.WEBSOCKET: 0.5, EntryPoint.OPENAI: 0.35}
END_USERS = 500  # how many end users, a few of whom make most calls
TEAMS = ["growth", "search", "support", "platform"]
FEATURES = ["ask", "summarize", "classify", "draft", "translate"]
SEED_WORKSPACES = ["seed-growth", "seed-search", "seed-support"]
ERRORS = [
    ("rate_limited", "the provider answered 429", 429),
    ("timeout", "no answer within the provider's timeout", None),
    ("upstream_error", "the provider answered 502", 502),
]


@dataclass(frozen=True)
class Deployment:
    provider_id: int
    provider_name: str
    model_id: int
    model_name: str
    endpoint: str
    input_price: Decimal
    output_price: Decimal


@dataclass(frozen=True)
class Seeded:
    calls: int
    attempts: int
    first: datetime
    last: datetime


def _deployments() -> list[Deployment]:
    """The database's models (every mode but "other"; the first made is the most used), after
    creating a few if it has none."""
    if not LlmModel.objects.exists():
        for name, kind, base_url, catalogue in STARTER_CATALOGUE:
            provider, _ = Provider.objects.get_or_create(
                name=name, defaults={"kind": kind, "base_url": base_url, "enabled": False}
            )
            for model, mode, price_in, price_out in catalogue:
                LlmModel.objects.create(
                    provider=provider,
                    name=model,
                    mode=mode,
                    input_price_per_million=Decimal(price_in),
                    output_price_per_million=Decimal(price_out),
                )
    endpoints: dict[str, str] = {
        ModelMode.EMBEDDING: Endpoint.EMBEDDINGS,
        ModelMode.COMPLETION: Endpoint.COMPLETIONS,
        ModelMode.RESPONSES: Endpoint.RESPONSES,
    }
    found = [
        Deployment(
            m.provider_id,
            m.provider.name,
            m.pk,
            m.name,
            endpoints.get(m.mode, Endpoint.CHAT),
            m.input_price_per_million,
            m.output_price_per_million,
        )  # fmt: skip
        for m in LlmModel.objects.select_related("provider")
        .exclude(mode=ModelMode.OTHER)
        .order_by("pk")
    ]
    if not found:
        raise ValueError("no model to seed calls of: every model's mode is 'other'")
    return found


def _callers() -> list[tuple[int, int, int | None]]:
    """(user id, API key id, workspace id) of the keys there are, after making three if there
    are none (their users each in a workspace of their own, made too)."""
    keys = list(ApiKey.objects.select_related("user__workspace_membership")[:50])
    if keys:
        return [(k.user_id, k.pk, workspace_id_for(user=k.user, api_key=k)) for k in keys]
    users = get_user_model().objects
    for n, name in enumerate(SEED_WORKSPACES, start=1):
        user, _ = users.get_or_create(username=f"seed-user-{n}")
        api_key_create(user=user, name="seed")
        workspace_create(name=name, members=[user])
    return _callers()


def _end_user(rank: int) -> str:
    """An app's own id for its user, as apps send OpenAI's ``user``: an id or an email."""
    return f"user{rank}@example.com" if rank % 3 == 0 else f"u_{rank:05d}"


def _tags() -> dict[str, str]:
    """Most callers tag their calls with a team, many with a feature, a few with more."""
    if random.random() < 0.3:
        return {}
    tags = {"team": random.choice(TEAMS)}
    if random.random() < 0.6:
        tags["feature"] = random.choice(FEATURES)
    if random.random() < 0.1:
        tags["env"] = "staging"
    return tags


def _zipf_weights(count: int) -> list[float]:
    """A few take most: the n-th gets 1/n."""
    return [1 / n for n in range(1, count + 1)]


def _picker(choices: list[tuple[Any, float]]) -> Callable[[], Any]:
    values = [value for value, _ in choices]
    cumulative = [0.0]
    for _, weight in choices:
        cumulative.append(cumulative[-1] + weight)
    total = cumulative[-1]

    def pick() -> Any:
        return random.choices(values, cum_weights=cumulative[1:], k=1)[0] if total else values[0]

    return pick


def _rows(
    count: int, first: datetime, span: timedelta, id_version: int
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """``count`` calls (with their attempts) at times spread evenly, in order, over ``span``."""
    deployments = _deployments()
    callers = _callers()
    deployment = _picker(list(zip(deployments, _zipf_weights(len(deployments)), strict=True)))
    caller = _picker(list(zip(callers, _zipf_weights(len(callers)), strict=True)))
    end_user = _picker(list(zip(range(1, END_USERS + 1), _zipf_weights(END_USERS), strict=True)))
    status_of = _picker(STATUSES)
    entry_point_of = _picker(ENTRY_POINTS)
    step = span / count
    for index in range(count):
        created_at = first + step * (index + random.random())
        used = deployment()
        entry_point = entry_point_of()
        status = status_of()
        stream = used.endpoint == Endpoint.CHAT and random.random() < STREAMED.get(entry_point, 0)
        embedding = used.endpoint == Endpoint.EMBEDDINGS
        input_tokens = min(int(random.lognormvariate(math.log(600), 1.1)), 200_000)
        output_tokens = (
            0 if embedding else min(int(random.lognormvariate(math.log(220), 0.9)), 16_000)
        )
        latency = random.lognormvariate(math.log(60 if embedding else 900), 0.8)
        if status != CallStatus.SUCCESS:
            output_tokens = 0 if status == CallStatus.ERROR else output_tokens // 3
        cost = (input_tokens * used.input_price + output_tokens * used.output_price) / 1_000_000
        api_call = entry_point not in (EntryPoint.BUILD, EntryPoint.AGENT)
        user_id, key_id, workspace_id = caller() if api_call else (None, None, None)
        retried = 1 + (random.random() < 0.04) + (random.random() < 0.01)
        # Made when the call was, as the platform makes them; random before UUIDv7.
        at_ns = int(created_at.timestamp() * 1e9)
        call_id = uuid.uuid4() if id_version == 4 else uuid7(at_ns=at_ns)
        request_id = (
            f"{random.getrandbits(128):032x}" if id_version == 4 else uuid7(at_ns=at_ns).hex
        )
        error = random.choice(ERRORS) if status == CallStatus.ERROR else None
        call = {
            "id": call_id,
            "request_id": request_id if api_call else "",
            "created_at": created_at,
            "entry_point": entry_point,
            "user_id": user_id,
            "api_key_id": key_id,
            "workspace_id": workspace_id,
            "end_user": _end_user(end_user()) if api_call and random.random() < 0.7 else "",
            "tags": _tags(),
            "requested_model": used.model_name,
            "provider_id": used.provider_id,
            "model_id": used.model_id,
            "provider_name": used.provider_name,
            "model_name": used.model_name,
            "endpoint": used.endpoint,
            "stream": stream,
            "status": status,
            "error_code": error[0] if error else "",
            "error_message": error[1] if error else "",
            "finish_reason": "stop" if status == CallStatus.SUCCESS and not embedding else "",
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cost": cost.quantize(Decimal("1e-8")),
            "latency_ms": round(latency, 3),
            "time_to_first_token_ms": round(latency * random.uniform(0.1, 0.5), 3)
            if stream and status == CallStatus.SUCCESS
            else None,
            "attempt_count": retried,
        }
        attempts = []
        for number in range(1, retried + 1):
            last = number == retried
            failed = not last or status == CallStatus.ERROR
            attempts.append(
                {
                    "number": number,
                    "provider_id": used.provider_id,
                    "provider_name": used.provider_name,
                    "model_name": used.model_name,
                    "status": CallStatus.ERROR if failed else status,
                    "error_code": (error[0] if error else "rate_limited") if failed else "",
                    "error_message": (error[1] if error else "the provider answered 429")
                    if failed
                    else "",
                    "http_status": (error[2] if error else 429) if failed else 200,
                    "latency_ms": round(latency / retried, 3),
                    "started_at": created_at
                    + timedelta(milliseconds=latency * (number - 1) / retried),
                }
            )
        yield call, attempts


def _columns(model: type[models.Model]) -> list[Any]:
    """Every column but a primary key the database makes (the attempts' sequence)."""
    return [f for f in model._meta.concrete_fields if not (f.primary_key and f.db_returning)]


def _copy(model: type[models.Model], rows: list[dict[str, Any]]) -> None:
    fields = _columns(model)
    quote = connection.ops.quote_name
    names = ", ".join(quote(f.column) for f in fields)
    defaults = [(f.attname, f.get_default()) for f in fields]
    json_columns = [i for i, field in enumerate(fields) if isinstance(field, models.JSONField)]
    sql = f"COPY {quote(model._meta.db_table)} ({names}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for row in rows:
            values = [row.get(name, default) for name, default in defaults]
            for index in json_columns:  # a call's tags: COPY takes JSON as its text
                values[index] = orjson.dumps(values[index]).decode()
            copy.write_row(values)


def _bulk_create(model: type[models.Model], rows: list[dict[str, Any]]) -> None:
    model._default_manager.bulk_create([model(**row) for row in rows], batch_size=500)


def call_records_seed(
    *, count: int, days: float, id_version: int = 7, chunk: int = CHUNK
) -> Seeded:
    """Store ``count`` made-up calls spread over the last ``days`` days (oldest first, as the
    recorder would have), ``chunk`` calls and their attempts per transaction. ``id_version`` 4
    makes the random ids calls had before UUIDv7 (to measure what they cost)."""
    if count < 1 or days <= 0:
        raise ValueError("count must be at least 1 and days above 0")
    if id_version not in (4, 7):
        raise ValueError("id_version is 4 or 7")
    write = _copy if connection.vendor == "postgresql" else _bulk_create
    last = timezone.now()
    first = last - timedelta(days=days)
    rows = _rows(count, first, last - first, id_version)
    calls_done = attempts_done = 0
    while calls_done < count:
        calls, attempts = [], []
        for call, tries in rows:
            calls.append(call)
            attempts += [{**attempt, "call_id": call["id"]} for attempt in tries]
            if len(calls) == chunk:
                break
        with transaction.atomic():
            write(LlmCall, calls)
            write(LlmCallAttempt, attempts)
            call_record_hooks_run([call["created_at"] for call in calls])
        calls_done += len(calls)
        attempts_done += len(attempts)
    return Seeded(calls_done, attempts_done, first, last)
