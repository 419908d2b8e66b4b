"""``make run`` on a fresh checkout prints a Dashboard URL, which answers 200 after login, and
its Celery beat publishes Home's figures."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx
import pytest
import websockets

from tests.support.processes import READY, ServerProcess, free_port, fresh_checkout_env
from tests.test_first_run import admin_password, banner

pytestmark = pytest.mark.slow


async def first_figures(base_url: str, session_id: str, timeout: float = 30.0) -> dict:
    """The first ``dashboard.figures`` event on ``metrics``, as Home's page receives it."""
    url = base_url.replace("http://", "ws://") + "/ws/"
    headers = {"Cookie": f"sessionid={session_id}"}
    origin = websockets.Origin(base_url)
    async with websockets.connect(url, additional_headers=headers, origin=origin) as ws:
        await ws.send(json.dumps({"type": "subscribe", "channel": "metrics"}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
            if message.get("event") == "dashboard.figures":
                return message["data"]


def test_the_banner_s_dashboard_url_answers_after_login(tmp_path):
    port = free_port()
    env = fresh_checkout_env(tmp_path / "var")
    platform = ServerProcess(
        "platform-dashboard",
        [sys.executable, "manage.py", "runplatform", "--port", str(port)],
        env,
    )
    platform.start(lambda: READY in platform.output(), timeout=120)
    try:
        dashboard = banner(platform.output())["Dashboard"]
        assert dashboard == f"http://127.0.0.1:{port}/"

        with httpx.Client(follow_redirects=True) as client:
            login = client.get(dashboard)
            assert login.url.path == "/admin/login/" and login.status_code == 200
            response = client.post(
                str(login.url),
                data={
                    "username": "admin",
                    "password": admin_password(platform.output()),
                    "csrfmiddlewaretoken": client.cookies["csrftoken"],
                },
                headers={"Referer": str(login.url)},
            )
            assert response.status_code == 200 and response.url.path == "/admin/"
            home = client.get(dashboard)
            assert home.status_code == 200 and home.url.path == "/admin/"
            assert "<title> Home | AI Orchestra</title>" in home.text
            assert 'data-figure="hour.requests"' in home.text
            live_js = client.get(f"http://127.0.0.1:{port}/static/core/live.js")
            assert live_js.status_code == 200
            session = client.cookies["sessionid"]
        figures = asyncio.run(first_figures(f"http://127.0.0.1:{port}", session))
        assert figures["display"]["hour.requests"] == "0"
        assert figures["health"]["database"] == {"status": "ok", "message": "sqlite"}
    finally:
        platform.stop(timeout=30)
