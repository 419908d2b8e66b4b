"""The shipped nginx configuration, run for real: Debian's nginx with the rendered
``nginx/templates`` file over TLS, in front of the production image's own web command (uvicorn,
its workers), with a real Celery worker and a fake upstream streaming one word every
``DELAY_MS``. Streams must arrive through nginx word by word, not when they end."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
import websockets
from channels.db import database_sync_to_async

from apps.accounts.models import Role
from tests.support.factories import api_key_issue, bearer
from tests.support.nginx import Nginx, nginx_binary
from tests.support.processes import AsgiServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TOKENS, DELAY_MS = 6, 250
HELLO = [{"role": "user", "content": "tell me a story"}]
LIMIT = 20
WINDOW_MS = 3_600_013  # a window of its own, apart from every other test's requests
SYNCED = 1.3  # every web process has read the shared counts (see test_client_address.py)
SLACK = 5
STATIC_FILE = "deploy-probe.css"


@pytest.fixture(scope="module")
def web(server_env) -> Iterator[AsgiServer]:
    nginx_binary()  # skip (or fail under CI) before starting anything
    settings = {
        "TRUSTED_PROXIES": "127.0.0.1",  # the nginx below, as the compose file trusts its own
        "RATE_LIMIT_MAX": str(LIMIT),
        "RATE_LIMIT_WINDOW_MS": str(WINDOW_MS),
    }
    server = AsgiServer({**server_env, **settings}, name="image-web", server="image").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(web, tmp_path_factory) -> Iterator[Nginx]:
    nginx = Nginx(tmp_path_factory.mktemp("nginx"), upstream=f"127.0.0.1:{web.port}")
    (nginx.static_root / STATIC_FILE).write_text("body { color: teal; }\n")
    nginx.start()
    yield nginx
    nginx.stop()


def client(proxy: Nginx, source: str = "127.0.0.1") -> httpx.Client:
    """An HTTPS client trusting the test certificate, calling from ``source`` (any 127/8
    address is this machine), so nginx sees a client other than itself."""
    transport = httpx.HTTPTransport(verify=proxy.ssl_context(), local_address=source)
    return httpx.Client(base_url=proxy.url, transport=transport, timeout=30)


def assert_arrived_one_by_one(arrivals: list[float]) -> None:
    """Words written ``DELAY_MS`` apart arrive about that far apart: a buffering proxy hands
    them over together when the stream ends. One short gap is allowed for a loaded machine."""
    assert len(arrivals) == TOKENS, arrivals
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:], strict=False)]
    delay = DELAY_MS / 1000
    assert sum(gap >= delay / 2 for gap in gaps) >= len(gaps) - 1, gaps
    assert arrivals[-1] - arrivals[0] >= 0.6 * delay * len(gaps), gaps


def test_nginx_accepts_the_shipped_configuration(proxy):
    checked = proxy.check()
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr and "test is successful" in checked.stderr
    assert "${" not in (proxy.root / "conf.d" / "default.conf").read_text()


def test_a_v1_stream_arrives_token_by_token(two_providers, upstream_a, operator_key, proxy):
    upstream_a.configure(chunk_delay_ms=DELAY_MS, tokens=TOKENS)
    sdk = openai.OpenAI(
        base_url=f"{proxy.url}/v1",
        api_key=operator_key,
        max_retries=0,
        http_client=client(proxy),
    )
    arrivals, text = [], ""
    for chunk in sdk.chat.completions.create(model="chat", messages=HELLO, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic())
            text += chunk.choices[0].delta.content
    assert text.startswith("Hello from a")
    assert_arrived_one_by_one(arrivals)


def test_an_sse_stream_arrives_token_by_token(two_providers, upstream_a, operator_key, proxy):
    upstream_a.configure(chunk_delay_ms=DELAY_MS, tokens=TOKENS)
    arrivals, names = [], []
    body = {"messages": HELLO, "model": "chat"}
    with (
        client(proxy) as http,
        http.stream("POST", "/api/streaming/chat", json=body, headers=bearer(operator_key)) as r,
    ):
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("event: "):
                names.append(line.removeprefix("event: "))
                if names[-1] == "token":
                    arrivals.append(time.monotonic())
    assert names == ["start"] + ["token"] * TOKENS + ["done"]
    assert_arrived_one_by_one(arrivals)


async def test_a_websocket_stream_arrives_token_by_token(
    two_providers, upstream_a, celery_worker, proxy
):
    upstream_a.configure(chunk_delay_ms=DELAY_MS, tokens=TOKENS)
    key = await database_sync_to_async(api_key_issue)(role=Role.OPERATOR)
    arrivals, kinds = [], []
    async with websockets.connect(
        proxy.ws_url, ssl=proxy.ssl_context(), additional_headers=bearer(key)
    ) as ws:
        await ws.send(json.dumps({"type": "stream", "id": "s1", "prompt": "hi", "model": "chat"}))
        while not kinds or kinds[-1] not in {"done", "error"}:
            message = json.loads(await asyncio.wait_for(ws.recv(), 20))
            kinds.append(message["type"])
            if message["type"] == "token":
                arrivals.append(time.monotonic())
    assert kinds[-1] == "done", kinds
    assert_arrived_one_by_one(arrivals)


def models_statuses(proxy: Nginx, key: str, source: str, forwarded: list[str]) -> list[int]:
    """One request per ``X-Forwarded-For`` the client writes, each on a new connection."""
    answers = []
    for written in forwarded:
        with client(proxy, source) as http:
            headers = {"X-Forwarded-For": written, **bearer(key)}
            answers.append(http.get("/v1/models", headers=headers).status_code)
    return answers


def test_the_per_ip_limit_sees_the_client_behind_nginx(operator_key, proxy):
    window = WINDOW_MS / 1000
    if window - time.time() % window < 15:  # clear of the window's end
        time.sleep(window - time.time() % window + 0.1)
    # What a client writes into X-Forwarded-For changes nothing: nginx appends its peer.
    first = models_statuses(proxy, operator_key, "127.0.0.2", [f"10.9.0.{n}" for n in range(LIMIT)])
    assert first == [200] * LIMIT
    time.sleep(SYNCED)
    more = models_statuses(proxy, operator_key, "127.0.0.2", [f"10.9.1.{n}" for n in range(20)])
    assert more.count(200) <= SLACK and more[-10:] == [429] * 10, more
    # Another client of the same nginx is its own client, not nginx's address.
    assert models_statuses(proxy, operator_key, "127.0.0.3", ["127.0.0.2"]) == [200]


def test_a_large_upload_is_refused_by_nginx(operator_key, proxy):
    with client(proxy) as http:
        too_large = http.post(
            "/v1/chat/completions", content=b"x" * (9 * 1024 * 1024), headers=bearer(operator_key)
        )
        # Between the application's own limit (4 MiB) and nginx's (8 MiB): the application's
        # answer, in its error shape.
        app_limit = http.post(
            "/v1/chat/completions", content=b"x" * (5 * 1024 * 1024), headers=bearer(operator_key)
        )
    assert too_large.status_code == 413
    assert too_large.headers["content-type"].startswith("text/html")  # nginx's page
    assert "413 Request Entity Too Large" in too_large.text
    assert app_limit.status_code == 413
    assert app_limit.json()["error"]["code"] == "body_too_large"


def test_static_files_redirects_and_security_headers(operator_key, proxy):
    with client(proxy) as http:
        static = http.get(f"/static/{STATIC_FILE}")
        api = http.get("/v1/models", headers=bearer(operator_key))
        page = http.get("/admin/login/")
        hidden = [http.get(path).status_code for path in ("/metrics", "/media/anything")]
    assert static.status_code == 200 and static.text == "body { color: teal; }\n"
    assert static.headers["content-type"].startswith("text/css")
    assert "server" not in static.headers or static.headers["server"] == "nginx"  # no version
    for answer in (static, api, page):
        assert answer.headers.get_list("strict-transport-security") == [
            "max-age=31536000; includeSubDomains"
        ]
        assert answer.headers.get_list("x-content-type-options") == ["nosniff"]
        assert answer.headers.get_list("x-frame-options") == ["DENY"]
    # The application's own headers stand (not doubled, not replaced).
    assert api.headers.get_list("referrer-policy") == ["no-referrer"]
    assert page.headers.get_list("referrer-policy") == ["same-origin"]
    assert "content-security-policy" in page.headers
    assert hidden == [404, 404]

    plain = httpx.get(f"{proxy.http_url}/admin/?page=2", follow_redirects=False)
    assert plain.status_code == 301
    assert plain.headers["location"] == "https://127.0.0.1/admin/?page=2"
    health = httpx.get(f"{proxy.http_url}/health")  # load balancers' check, over plain HTTP
    assert health.headers["content-type"] == "application/json" and "status" in health.json()


def test_the_image_health_check_names_a_host_the_settings_allow(web):
    """``python -m orchestra.healthcheck`` (the image's HEALTHCHECK and web's compose check)
    passes against the image's web command, and only with a host Django accepts."""

    def check(allowed_hosts: str) -> int:
        command = [sys.executable, "-m", "orchestra.healthcheck", str(web.port)]
        env = {**web.env, "ALLOWED_HOSTS": allowed_hosts}
        return subprocess.run(command, env=env, timeout=30).returncode

    assert check("localhost,web") == 0
    assert check(".localhost") == 0
    assert check("orchestra.example.com") == 1  # refused by the server (not in its hosts)
