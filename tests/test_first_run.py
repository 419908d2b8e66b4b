"""The README's run command on a fresh checkout: SQLite, embedded Redis, nothing configured."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time

import httpx
import pytest
import websockets

from tests.support.processes import ServerProcess, free_port

pytestmark = pytest.mark.slow

ADMIN_PASSWORD = "first-run-password-9"
CONFIGURED = (
    "DATABASE_URL",
    "REDIS_URL",
    "CACHE_URL",
    "CHANNEL_LAYER_URL",
    "CELERY_BROKER_URL",
    "DJANGO_SETTINGS_MODULE",
    "EMBEDDED_REDIS_NAME",
    "PROMETHEUS_MULTIPROC_DIR",
)


@pytest.fixture
def platform(tmp_path):
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in CONFIGURED}
    env |= {"ORCHESTRA_VAR_DIR": str(tmp_path / "var"), "ORCHESTRA_ADMIN_PASSWORD": ADMIN_PASSWORD}
    process = ServerProcess(
        "platform", [sys.executable, "manage.py", "runplatform", "--port", str(port)], env
    )

    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=3).json()["status"] == "ok"
        except (httpx.HTTPError, ValueError):
            return False

    process.start(healthy, timeout=120)
    yield process, f"http://127.0.0.1:{port}"
    process.stop(timeout=30)


def admin_login(base_url: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, follow_redirects=True)
    client.get("/admin/login/")
    response = client.post(
        "/admin/login/?next=/admin/",
        data={"username": "admin", "password": ADMIN_PASSWORD,
              "csrfmiddlewaretoken": client.cookies["csrftoken"]},
        headers={"Referer": f"{base_url}/admin/login/"},
    )  # fmt: skip
    assert response.status_code == 200
    assert "Site administration" in response.text
    return client


async def websocket_ping(base_url: str, session_id: str) -> dict:
    url = base_url.replace("http://", "ws://") + "/ws/"
    headers = {"Cookie": f"sessionid={session_id}"}
    async with websockets.connect(url, additional_headers=headers, origin=base_url) as ws:
        await ws.send(json.dumps({"type": "ping", "id": "first"}))
        return json.loads(await asyncio.wait_for(ws.recv(), 5))


def test_run_command_brings_up_the_whole_platform(platform):
    process, base_url = platform
    health = httpx.get(f"{base_url}/health").json()
    assert health["status"] == "ok"
    for service in ("database", "cache", "channel_layer", "celery"):
        assert health["services"][service] == "ok", health
    assert health["checks"]["database"]["message"] == "sqlite"

    client = admin_login(base_url)
    assert asyncio.run(websocket_ping(base_url, client.cookies["sessionid"])) == {
        "type": "pong", "id": "first"
    }  # fmt: skip
    assert httpx.get(f"{base_url}/static/admin/css/base.css").status_code == 200

    output = process.output()
    assert "/admin/" in output and "/health" in output and "Ctrl-C" in output
    assert re.search(r"Embedded Redis on unix://", output)

    process.process.send_signal(signal.SIGINT)
    assert process.process.wait(30) == 0
    time.sleep(0.5)
    for name in ("web", "worker", "beat", "redis"):
        assert f"Stopped {name}." in process.output()
