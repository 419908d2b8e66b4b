"""The Playground in Chromium, against a real daphne, a real Celery worker (which runs WebSocket
streams) and the fake upstreams: tokens stream in, Stop cancels, a viewer cannot send."""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_UP, Decimal

import pytest
from playwright.sync_api import Page, expect

from apps.accounts.models import Role
from apps.providers.models import CallStatus, LlmCall
from tests.dashboard.conftest import member
from tests.dashboard.test_accessibility import CONTRAST, TEXT, UNLABELLED, choose_theme
from tests.support.browser import screenshot

pytestmark = pytest.mark.django_db(transaction=True)

# Each change of the answer's text, as the page saw it (a reload would lose it).
WATCH_ANSWER = """
() => {
  window.answerLengths = [];
  new MutationObserver(() => {
    const turns = document.querySelectorAll('#play-transcript [data-role="assistant"] .play-text');
    const last = turns[turns.length - 1];
    if (last) window.answerLengths.push(last.textContent.length);
  }).observe(document.getElementById("play-transcript"),
             {childList: true, subtree: true, characterData: true});
}
"""


def as_shown(ms: float) -> str:
    """A duration as the page shows it: the protocol's 0.1 ms, rounded half up by JavaScript."""
    whole = Decimal(str(round(ms, 1))).quantize(Decimal(1), ROUND_HALF_UP)
    return f"{whole:,} ms"


def open_playground(page: Page) -> None:
    page.goto("/admin/playground/")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live", timeout=15_000)


def sent_frames(page: Page) -> list[dict]:
    """The protocol messages the page sends over its WebSocket (pings included)."""
    frames: list[dict] = []
    page.on(
        "websocket",
        lambda socket: socket.on("framesent", lambda payload: frames.append(json.loads(payload))),
    )
    return frames


def answers(page: Page):
    return page.locator('#play-transcript [data-role="assistant"]')


def shown(page: Page, name: str):
    return page.locator(f'#play-result [data-result="{name}"]')


def test_an_operator_streams_an_answer_and_sees_who_served_it(
    logged_in_page,
    two_providers,
    upstream_a,
    upstream_b,
    celery_worker,
    recorded_calls,
    browser_errors,
):
    upstream_a.configure(chunk_delay_ms=60, tokens=12)
    page: Page = logged_in_page(user=member(Role.OPERATOR))
    frames = sent_frames(page)
    open_playground(page)
    expect(page.locator("#play-not-allowed")).to_have_count(0)
    page.evaluate(WATCH_ANSWER)

    page.get_by_label("Model").select_option("chat")
    message = page.get_by_label("Message", exact=True)
    message.fill("hello there")
    message.press("Control+Enter")  # sends from the keyboard

    answer = answers(page).last
    expect(page.locator("#play-status")).to_contain_text("Answered by a in", timeout=15_000)
    expect(answer.locator(".play-text")).to_have_text(re.compile(r"^Hello from a( \w+){9}$"))
    lengths = page.evaluate("window.answerLengths")
    assert len(set(lengths)) >= 6, f"tokens arrived one by one, not all at once: {lengths}"
    assert lengths == sorted(lengths)
    expect(page.get_by_label("Message", exact=True)).to_have_value("")

    (call,) = recorded_calls(1)
    assert call.status == CallStatus.SUCCESS and call.provider_name == "a"
    expect(shown(page, "provider")).to_have_text("a")
    expect(shown(page, "model")).to_have_text("fake-model")
    expect(shown(page, "latency")).to_have_text(as_shown(call.latency_ms))
    expect(shown(page, "ttft")).to_have_text(as_shown(call.time_to_first_token_ms))
    expect(shown(page, "tokens")).to_have_text(f"{call.input_tokens} / 12")
    assert call.cost > 0
    expect(shown(page, "cost")).to_have_text(f"${call.cost.normalize():f}")
    link = page.get_by_role("link", name="Open the call record")
    expect(link).to_have_attribute("href", f"/admin/providers/llmcall/{call.pk}/change/")
    (stream_frame,) = [f for f in frames if f["type"] == "stream"]
    assert stream_frame["model"] == "chat" and "provider" not in stream_frame
    screenshot(page, "playground-answered")

    # A follow-up, pinned to b with settings: sent with the conversation so far.
    page.get_by_label("Provider").select_option("b")
    page.get_by_label("Strategy").select_option("round-robin")
    page.get_by_label("Temperature").fill("0.3")
    page.get_by_label("Max tokens").fill("5")
    page.get_by_label("System message").fill("Be brief.")
    message.fill("and again")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#play-status")).to_contain_text("Answered by b in", timeout=15_000)
    expect(page.locator("#play-status")).to_contain_text("finish reason: length")
    expect(shown(page, "provider")).to_have_text("b")
    expect(shown(page, "tokens")).to_have_text(re.compile(r" / 5$"))
    body = upstream_b.stats()["last_request"]["body"]
    assert body["temperature"] == 0.3 and body["max_tokens"] == 5
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert body["messages"][2]["content"].startswith("Hello from a")
    assert [f for f in frames if f["type"] == "stream"][1]["strategy"] == "round-robin"
    expect(answers(page)).to_have_count(2)
    screenshot(page, "playground-conversation")

    # The link now names the second call's record, and opens it.
    second = recorded_calls(2)[1]
    assert second.provider_name == "b" and second.output_tokens == 5
    expect(link).to_have_attribute("href", f"/admin/providers/llmcall/{second.pk}/change/")
    link.click()
    expect(page).to_have_url(re.compile(rf"/admin/providers/llmcall/{second.pk}/change/$"))
    expect(page.locator("#content")).to_contain_text(str(second.pk))
    assert browser_errors.console_errors == []


def test_stop_cancels_the_stream_mid_answer(
    logged_in_page, two_providers, upstream_a, celery_worker, recorded_calls, browser_errors
):
    upstream_a.configure(chunk_delay_ms=150, tokens=80)
    page: Page = logged_in_page(user=member(Role.OPERATOR))
    open_playground(page)
    page.get_by_label("Message", exact=True).fill("tell me a long story")
    page.get_by_role("button", name="Send").click()

    text = answers(page).last.locator(".play-text")
    expect(text).to_contain_text("Hello from a", timeout=15_000)
    stop = page.get_by_role("button", name="Stop")
    stop.focus()
    page.keyboard.press("Enter")

    status = page.locator("#play-status")
    expect(status).to_have_text("Stopped: the answer was cut off at your request.", timeout=15_000)
    expect(answers(page).last.locator(".pill")).to_have_text("stopped")
    expect(stop).to_be_disabled()
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    stopped_at = text.text_content() or ""
    page.wait_for_timeout(1000)  # 6 more tokens, had it gone on
    assert text.text_content() == stopped_at, "the answer stopped growing"
    assert 3 <= len(stopped_at.split()) < 80

    upstream_a.wait_for(lambda stats: stats["client_disconnects"] == 1)
    (call,) = recorded_calls(1)
    assert call.status == CallStatus.CANCELLED
    link = page.get_by_role("link", name="Open the call record")
    expect(link).to_have_attribute("href", f"/admin/providers/llmcall/{call.pk}/change/")
    screenshot(page, "playground-stopped")
    assert browser_errors.console_errors == []


def test_a_viewer_cannot_send(logged_in_page, two_providers, upstream_a, celery_worker):
    page: Page = logged_in_page(user=member(Role.VIEWER))
    open_playground(page)
    expect(page.locator("#play-not-allowed")).to_contain_text("not send")
    expect(page.get_by_label("Message", exact=True)).to_be_disabled()
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    expect(page.get_by_label("Model")).to_be_disabled()

    # The server refuses whatever the page shows: a stream sent from the viewer's own session,
    # through the page's client and through a socket of its own.
    replies = page.evaluate(
        """() => new Promise((resolve) => {
          const got = [];
          OrchestraLive.onMessage((message) => { got.push(message); });
          OrchestraLive.send({type: "stream", id: "forged-1", model: "chat",
                              messages: [{role: "user", content: "hi"}]});
          const socket = new WebSocket(`ws://${location.host}/ws/`);
          socket.onopen = () => socket.send(JSON.stringify(
            {type: "query", id: "forged-2", model: "chat", prompt: "hi"}));
          socket.onmessage = (frame) => {
            got.push(JSON.parse(frame.data));
            socket.close();
          };
          setTimeout(() => resolve(got), 3000);
        })"""
    )
    by_id = {reply.get("id"): reply for reply in replies}
    assert set(by_id) == {"forged-1", "forged-2"}, replies
    for reply in by_id.values():
        assert reply["type"] == "error" and reply["code"] == "forbidden", reply
    assert upstream_a.stats()["requests"] == 0
    assert not LlmCall.objects.exists()
    screenshot(page, "playground-viewer")


def test_the_playground_in_the_dark_and_at_phone_width(
    logged_in_page, two_providers, upstream_a, celery_worker, browser_errors
):
    page: Page = logged_in_page(user=member(Role.OPERATOR))
    open_playground(page)
    choose_theme(page, "Dark")
    open_playground(page)
    expect(page.locator("html")).to_have_class(re.compile(r"\bdark\b"))
    page.get_by_label("Message", exact=True).fill("hello")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#play-result")).to_be_visible(timeout=15_000)
    assert page.evaluate(UNLABELLED) == []
    assert page.evaluate(CONTRAST, TEXT + ", #content .play-text, #content label") == []
    screenshot(page, "playground-dark")

    # Opened on a phone, the settings start folded so the conversation is in view; they open
    # from the keyboard.
    page.set_viewport_size({"width": 390, "height": 844})
    open_playground(page)
    expect(page.get_by_label("Model")).to_be_hidden()
    expect(page.get_by_label("Message", exact=True)).to_be_in_viewport()
    expect(page.locator("#play-summary")).to_have_text("chat · any provider")
    page.screenshot(path="var/screenshots/playground-loaded-phone.png", full_page=True)
    page.locator("#play-settings summary").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Model")).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "nothing sticks out sideways at phone width"
    assert browser_errors.console_errors == []
