"""The README's run command on a fresh checkout: SQLite, embedded Redis, nothing configured."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import time

import httpx
import pytest
import websockets

from tests.support.processes import READY, ServerProcess, free_port, fresh_checkout_env

pytestmark = pytest.mark.slow

PASSWORD_LINE = re.compile(r"Created administrator 'admin', password: (\S+)")


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """One platform for the module; the last test stops it with Ctrl-C."""
    port = free_port()
    var_dir = tmp_path_factory.mktemp("first-run") / "var"
    env = fresh_checkout_env(var_dir)
    process = ServerProcess(
        "platform", [sys.executable, "manage.py", "runplatform", "--port", str(port)], env
    )
    # Ready when it says so, not when /health says ok: the banner must wait for the worker.
    process.start(lambda: READY in process.output(), timeout=120)
    yield process, f"http://127.0.0.1:{port}"
    process.stop(timeout=30)


def banner(output: str) -> dict[str, str]:
    """The banner's lines, label -> URL."""
    lines = output[output.index(READY) :].splitlines()[1:]
    links = {}
    for line in lines:
        match = re.fullmatch(r"  (\S.*?)\s+((?:http|ws)://\S+)", line)
        if not match:
            break
        links[match[1]] = match[2]
    return links


def admin_password(output: str) -> str:
    """The generated password, as a person reads it: the last time the output shows it."""
    return PASSWORD_LINE.findall(output)[-1]


def admin_login(base_url: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, follow_redirects=True)
    client.get("/admin/login/")
    response = client.post(
        "/admin/login/?next=/admin/",
        data={
            "username": "admin",
            "password": password,
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        },
        headers={"Referer": f"{base_url}/admin/login/"},
    )
    assert response.status_code == 200
    assert "Site administration" in response.text
    return client


async def websocket_ping(base_url: str, session_id: str) -> dict:
    url = base_url.replace("http://", "ws://") + "/ws/"
    headers = {"Cookie": f"sessionid={session_id}"}
    origin = websockets.Origin(base_url)
    async with websockets.connect(url, additional_headers=headers, origin=origin) as ws:
        await ws.send(json.dumps({"type": "ping", "id": "first"}))
        return json.loads(await asyncio.wait_for(ws.recv(), 5))


def test_run_command_brings_up_the_whole_platform(platform):
    process, base_url = platform
    # The banner comes once a worker answers: /health is ok at once, not "degraded".
    health = httpx.get(f"{base_url}/health").json()
    assert health["status"] == "ok", health
    for service in ("database", "cache", "channel_layer", "celery"):
        assert health["services"][service] == "ok", health
    assert health["checks"]["database"]["message"] == "sqlite"
    assert health["environment"] == "development", health

    client = admin_login(base_url, admin_password(process.output()))
    assert asyncio.run(websocket_ping(base_url, client.cookies["sessionid"])) == {
        "type": "pong",
        "id": "first",
    }
    assert httpx.get(f"{base_url}/static/admin/css/base.css").status_code == 200

    output = process.output()
    assert re.search(r"Embedded Redis on unix://", output)
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO ", output, re.M)  # text logs


def test_the_banner_shows_only_urls_that_answer(platform):
    process, base_url = platform
    links = banner(process.output())
    expected = {"Admin", "API docs", "OpenAI base URL", "WebSocket", "Health", "Metrics"}
    assert expected <= set(links)
    assert links["OpenAI base URL"] == f"{base_url}/v1"
    assert httpx.get(f"{base_url}/v1/models").status_code == 401  # answers, wants a key
    for label, url in links.items():
        if label not in ("WebSocket", "OpenAI base URL"):
            assert httpx.get(url).status_code != 404, label
    if httpx.get(f"{base_url}/").status_code == 404:
        assert "Dashboard" not in links
    assert links["WebSocket"] == base_url.replace("http://", "ws://") + "/ws/"
    assert process.output().count(READY) == 1


def test_the_generated_password_is_shown_again_after_the_banner(platform):
    """Celery's log lines scroll the first print away: the last lines of start-up repeat it."""
    process, base_url = platform
    output = process.output()
    before, _, after = output.partition(READY)
    assert PASSWORD_LINE.search(before), "ensure_admin printed no generated password"
    lines = after.splitlines()
    end_of_banner = 1 + len(banner(output))
    shown_again = [n for n, line in enumerate(lines) if PASSWORD_LINE.search(line)]
    assert shown_again, f"no password after the banner:\n{after[:2000]}"
    assert shown_again[0] <= end_of_banner + 2, lines[: end_of_banner + 3]
    assert PASSWORD_LINE.findall(before) == PASSWORD_LINE.findall(after)
    assert "changepassword admin" in lines[shown_again[0] + 1]
    admin_login(base_url, PASSWORD_LINE.findall(after)[0]).close()


def test_no_debug_pages_without_debug(platform):
    _, base_url = platform
    page = httpx.get(f"{base_url}/no-such-page", headers={"Accept": "text/html"})
    assert page.status_code == 404
    assert "URLconf" not in page.text and "REDIS_URL" not in page.text
    api = httpx.get(f"{base_url}/api/v1/no-such-thing", headers={"Accept": "text/html"})
    assert api.status_code == 404
    assert api.json()["error"]["code"] == "not_found"
    assert httpx.get(f"{base_url}/health").json()["status"] == "ok"


def test_ctrl_c_stops_every_process(platform):
    process, _ = platform
    process.process.send_signal(signal.SIGINT)
    assert process.process.wait(30) == 0
    time.sleep(0.5)
    for name in ("web", "worker", "beat", "redis"):
        assert f"Stopped {name}." in process.output()
