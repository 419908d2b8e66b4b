"""Nothing missed while away: a ``/ws/`` client that subscribes again with the last event id it
saw gets what its channel kept since, in order, then live events, with no gap and nothing twice;
against a real daphne, with events published from this process through the bus."""

from __future__ import annotations

import asyncio
import itertools
import json
import time

import pytest
import websockets
from channels.db import database_sync_to_async
from django.utils import timezone

from apps.accounts.models import Role
from apps.core.events import apublish, event_id_at, event_id_order
from tests.support.factories import api_key_issue
from tests.support.processes import AsgiServer

pytestmark = pytest.mark.django_db(transaction=True)

issue_key = database_sync_to_async(api_key_issue)
widget_ids = itertools.count(int(time.time()) % 100_000 * 1000)


def a_widget_channel() -> str:
    """A channel no other test publishes on."""
    return f"widget:{next(widget_ids)}"


async def connect(server: AsgiServer, key: str):
    return await websockets.connect(
        server.ws_url, additional_headers={"Authorization": f"Bearer {key}"}
    )


async def subscribe(ws, channel: str, since: str | None = None) -> dict:
    await ws.send(json.dumps({"type": "subscribe", "channel": channel, "since": since}))
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


async def received(ws, count: int) -> list[dict]:
    messages = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(count)]
    assert {message["type"] for message in messages} == {"event"}, messages
    return messages


async def nothing_more(ws) -> None:
    """What the server sent so far was all: a ping is answered next."""
    await ws.send(json.dumps({"type": "ping", "id": "end"}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"type": "pong", "id": "end"}


def widget(n: int, status: str = "running") -> dict:
    return {"id": n, "status": status}


async def test_a_client_away_for_5_s_gets_the_100_events_it_missed_in_order_then_live_ones(
    asgi_server,
):
    key = await issue_key(role=Role.VIEWER)
    channel = a_widget_channel()
    async with await connect(asgi_server, key) as ws:
        assert await subscribe(ws, channel) == {"type": "subscribed", "channel": channel}
        await apublish(channel, "widget.updated", widget(0))
        [seen] = await received(ws, 1)
    assert seen["data"] == widget(0)
    last_id = seen["id"]

    away = time.monotonic()
    for n in range(1, 101):
        await apublish(channel, "widget.updated", widget(n, "missed"))
        await asyncio.sleep(0.05)
    assert time.monotonic() - away >= 5

    async with await connect(asgi_server, key) as ws:
        assert await subscribe(ws, channel, since=last_id) == {
            "type": "subscribed",
            "channel": channel,
            "since": last_id,
            "replayed": 100,
            "complete": True,
        }
        missed = await received(ws, 100)
        assert [event["data"] for event in missed] == [widget(n, "missed") for n in range(1, 101)]
        assert {(event["channel"], event["event"]) for event in missed} == {
            (channel, "widget.updated")
        }
        ids = [event_id_order(event["id"]) for event in missed]
        assert ids == sorted(set(ids)) and ids[0] > event_id_order(last_id)

        for n in range(101, 104):
            await apublish(channel, "widget.updated", widget(n, "live"))
        live = await received(ws, 3)
        assert [event["data"] for event in live] == [widget(n, "live") for n in range(101, 104)]
        assert event_id_order(live[0]["id"]) > ids[-1]
        await nothing_more(ws)


async def test_subscribing_again_in_the_middle_of_a_burst_misses_nothing_and_repeats_nothing(
    asgi_server,
):
    """The switch from what was kept to live events, while events keep coming: the connection
    joins the live group before it reads the stream, and drops the live events it replayed."""
    key = await issue_key(role=Role.VIEWER)
    channel = a_widget_channel()
    since = await apublish(channel, "widget.updated", widget(0))
    assert since is not None
    total = 400

    async def burst() -> None:
        for n in range(1, total + 1):
            await apublish(channel, "widget.updated", widget(n))

    publishing = asyncio.ensure_future(burst())
    await asyncio.sleep(0.1)
    async with await connect(asgi_server, key) as ws:
        subscribed = await subscribe(ws, channel, since=since)
        await publishing
        events = await received(ws, total)
        await nothing_more(ws)
    assert 0 < subscribed["replayed"] < total, "the client came back during the burst"
    assert [event["data"]["id"] for event in events] == list(range(1, total + 1))


async def test_a_viewer_cannot_replay_a_channel_it_may_not_follow(asgi_server):
    since = event_id_at(timezone.now())
    line = {
        "at": timezone.now().isoformat(),
        "level": "WARNING",
        "logger": "tests.replay",
        "message": "only operators read this",
        "request_id": "replay",
    }
    await apublish("logs", "log.record", line)

    async with await connect(asgi_server, await issue_key(role=Role.VIEWER)) as ws:
        answer = await subscribe(ws, "logs", since=since)
        assert answer["type"] == "error" and answer["code"] == "forbidden", answer
        await nothing_more(ws)

    async with await connect(asgi_server, await issue_key(role=Role.OPERATOR)) as ws:
        answer = await subscribe(ws, "logs", since=since)
        assert answer["type"] == "subscribed" and answer["replayed"] >= 1, answer
        replayed = await received(ws, answer["replayed"])
        assert line in [event["data"] for event in replayed]


async def test_a_client_back_after_its_events_were_dropped_is_told_so(asgi_server, settings):
    """Past the cap, the oldest events go: what is left still comes, and the subscription says
    it is not complete, so the page reloads what it shows."""
    settings.EVENTS_KEPT_PER_CHANNEL = 10  # approximately: Redis trims whole nodes of 100
    key = await issue_key(role=Role.VIEWER)
    channel = a_widget_channel()
    since = await apublish(channel, "widget.updated", widget(0))
    for n in range(1, 301):
        await apublish(channel, "widget.updated", widget(n))
    async with await connect(asgi_server, key) as ws:
        answer = await subscribe(ws, channel, since=since)
        assert answer["complete"] is False and 0 < answer["replayed"] < 300, answer
        kept = await received(ws, answer["replayed"])
        assert [event["data"]["id"] for event in kept] == list(range(301 - answer["replayed"], 301))

        # A quiet channel's recent id is complete, with nothing to send.
        answer = await subscribe(ws, a_widget_channel(), since=event_id_at(timezone.now()))
        assert answer["complete"] is True and answer["replayed"] == 0
        await nothing_more(ws)


@pytest.mark.parametrize("since", ["yesterday", "12-ab", 17, "-1", "1" * 25])
async def test_a_since_that_is_not_an_event_id_is_refused(asgi_server, since):
    async with await connect(asgi_server, await issue_key(role=Role.VIEWER)) as ws:
        answer = await subscribe(ws, a_widget_channel(), since=since)
        assert answer["type"] == "error" and answer["code"] == "invalid_request", answer
        assert "since" in answer["message"]
        await nothing_more(ws)
