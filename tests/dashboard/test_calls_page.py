"""The Calls page (the LLM call records' changelist): filters narrow the list, the totals are
those of the filtered calls, the detail shows every attempt; and a person filters it in Chromium.
"""

from __future__ import annotations

import re
import statistics
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone
from playwright.sync_api import Page, expect
from unfold.templatetags.unfold_list import items_for_result  # type: ignore[import-untyped]

from apps.accounts.models import Role, Workspace
from apps.accounts.services import api_key_create
from apps.providers.admin import seconds_clock
from apps.providers.models import (
    CallStatus,
    EntryPoint,
    LlmCall,
    LlmCallAttempt,
    LlmModel,
    Provider,
)
from apps.providers.selectors import llm_call_totals
from tests.dashboard.conftest import call_record, member
from tests.support.browser import screenshot

URL = "/admin/providers/llmcall/"


def make_calls() -> list[LlmCall]:
    """A mix of providers, models, statuses, entry points, callers and times."""
    for name in ("alpha", "beta"):
        provider = Provider.objects.create(
            name=name, kind="openai_compatible", base_url="http://x.test/v1"
        )
        for model in ("fake-model", "big-model"):
            LlmModel.objects.create(provider=provider, name=model)
    now = timezone.now()
    calls = []
    for i in range(40):
        call = call_record(
            at=now - timedelta(minutes=10 * i),
            provider_name="beta" if i % 3 == 0 else "alpha",
            status=CallStatus.ERROR if i % 4 == 0 else CallStatus.SUCCESS,
            entry_point=EntryPoint.SSE if i % 5 == 0 else EntryPoint.OPENAI,
            latency_ms=100 + 10 * i,
            input_tokens=i,
            output_tokens=2 * i,
            cost=f"0.00{i % 9}1",
        )
        call.model_name = "big-model" if i % 2 else "fake-model"
        calls.append(call)
    return LlmCall.objects.bulk_create(calls)


def expected_totals(calls: list[LlmCall]) -> dict[str, object]:
    """The totals, computed here from the records themselves."""
    finished = [c for c in calls if c.status != CallStatus.RUNNING]
    errors = [c for c in calls if c.status == CallStatus.ERROR]
    succeeded = sorted(c.latency_ms for c in calls if c.status == CallStatus.SUCCESS)
    return {
        "calls": len(calls),
        "tokens": sum(c.input_tokens + c.output_tokens for c in calls),
        "cost": sum((c.cost for c in calls), Decimal(0)),
        "error_rate": len(errors) / len(finished) if finished else 0.0,
        "p50_ms": statistics.median(succeeded) if succeeded else None,
    }


def listed(client: Client, query: str = "") -> tuple[set, dict[str, object], str]:
    response = client.get(f"{URL}?{query}")
    assert response.status_code == 200
    changelist = response.context["cl"]
    totals = response.context["totals"]
    got = {
        "calls": totals.calls,
        "tokens": totals.tokens,
        "cost": totals.cost,
        "error_rate": totals.error_rate,
        "p50_ms": totals.p50_ms,
    }
    return {call.pk for call in changelist.result_list}, got, response.content.decode()


@pytest.mark.django_db
def test_filters_narrow_the_list_and_the_totals_are_those_of_the_filtered_calls():
    calls = make_calls()
    client = Client()
    client.force_login(member(Role.VIEWER))

    shown, totals, _ = listed(client)
    assert shown == {c.pk for c in calls}
    assert totals == expected_totals(calls)

    cases = {
        "provider_name=beta": lambda c: c.provider_name == "beta",
        "status__exact=error": lambda c: c.status == CallStatus.ERROR,
        "provider_name=beta&status__exact=error": (
            lambda c: c.provider_name == "beta" and c.status == CallStatus.ERROR
        ),
        "model_name=big-model": lambda c: c.model_name == "big-model",
        "entry_point__exact=sse": lambda c: c.entry_point == EntryPoint.SSE,
    }
    for query, wanted in cases.items():
        chosen = [c for c in calls if wanted(c)]
        assert 0 < len(chosen) < len(calls), query
        shown, totals, _ = listed(client, query)
        assert shown == {c.pk for c in chosen}, query
        assert totals == expected_totals(chosen), query


@pytest.mark.django_db
def test_the_time_filter_and_the_caller_filter():
    calls = make_calls()
    ada = member(Role.OPERATOR, username="ada")
    api_key, _raw = api_key_create(user=ada, name="laptop")
    mine = calls[:5]
    LlmCall.objects.filter(pk__in=[c.pk for c in mine[:3]]).update(user=ada)
    LlmCall.objects.filter(pk__in=[c.pk for c in mine[3:]]).update(api_key=api_key)
    client = Client()
    client.force_login(member(Role.VIEWER))

    shown, _, _ = listed(client, "caller=ada")
    assert shown == {c.pk for c in mine[:3]}
    shown, _, _ = listed(client, f"caller={api_key.prefix}")
    assert shown == {c.pk for c in mine[3:]}

    start = timezone.now() - timedelta(minutes=95)
    end = timezone.now() - timedelta(minutes=25)
    query = (
        f"created_at_from_0={start:%Y-%m-%d}&created_at_from_1={start:%H:%M:%S}"
        f"&created_at_to_0={end:%Y-%m-%d}&created_at_to_1={end:%H:%M:%S}"
    )
    chosen = [c for c in calls if start.replace(microsecond=0) <= c.created_at <= end]
    shown, totals, _ = listed(client, query)
    assert shown == {c.pk for c in chosen} and len(chosen) == 7
    assert totals == expected_totals(chosen)


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["", "provider_name=beta&status__exact=error", "_popup=1"])
def test_the_rows_are_the_cells_unfold_renders(query):
    """The page renders its rows itself (``apps.providers.calls_list``), as unfold would."""
    calls = make_calls()
    workspace = Workspace.objects.create(name="growth <&> team")
    LlmCall.objects.filter(pk=calls[3].pk).update(
        workspace=workspace, end_user="<b>ada</b>", error_code="rate_limit", stream=True
    )
    client = Client()
    client.force_login(member(Role.VIEWER))
    response = client.get(f"{URL}?{query}")
    changelist = response.context["cl"]
    unfolds = ["".join(items_for_result(changelist, call, None)) for call in changelist.result_list]
    assert len(unfolds) >= 3
    assert response.context["call_rows"] == unfolds
    html = response.content.decode()
    assert all(row in html for row in unfolds)
    if not query:
        assert "growth &lt;&amp;&gt; team" in html and "&lt;b&gt;ada&lt;/b&gt;" in html


@pytest.mark.django_db
def test_a_call_id_finds_its_call_and_the_page_says_its_totals():
    calls = make_calls()
    client = Client()
    client.force_login(member(Role.VIEWER))
    shown, _, html = listed(client, f"q={calls[7].pk}")
    assert shown == {calls[7].pk}
    assert "Totals of the filtered calls" in html
    shown, _, _ = listed(client, "q=not-a-uuid")
    assert shown == set()


@pytest.mark.django_db
def test_totals_of_nothing_are_zero():
    assert llm_call_totals(calls=LlmCall.objects.none()).calls == 0
    totals = llm_call_totals(calls=LlmCall.objects.all())
    assert (totals.calls, totals.tokens, totals.cost, totals.error_rate, totals.p50_ms) == (
        0,
        0,
        Decimal(0),
        0.0,
        None,
    )


@pytest.mark.django_db
def test_the_detail_shows_every_attempt_with_tokens_cost_and_latency():
    call = call_record(input_tokens=123, output_tokens=456, cost="0.0789", latency_ms=4321.0)
    call.attempt_count = 3
    call.save()
    tries = [
        ("alpha", CallStatus.ERROR, "upstream_timeout", 504),
        ("alpha", CallStatus.ERROR, "rate_limited", 429),
        ("beta", CallStatus.SUCCESS, "", 200),
    ]
    LlmCallAttempt.objects.bulk_create(
        LlmCallAttempt(
            call=call,
            number=n,
            provider_name=provider,
            model_name="fake-model",
            status=status,
            error_code=code,
            http_status=http,
            latency_ms=100.0 * n,
            started_at=call.created_at,
        )
        for n, (provider, status, code, http) in enumerate(tries, 1)
    )
    client = Client()
    client.force_login(member(Role.VIEWER))
    response = client.get(f"{URL}{call.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    for code in ("upstream_timeout", "rate_limited", "504", "429"):
        assert code in html
    assert html.count("fake-model") >= 3
    for text in ("123", "456", "0.0789", "4,321 ms", "100 ms", "300 ms"):
        assert text in html


@pytest.mark.django_db(transaction=True)
def test_a_person_filters_the_calls_by_provider_and_status(logged_in_page, browser_errors):
    calls = make_calls()
    chosen = [c for c in calls if c.provider_name == "beta" and c.status == CallStatus.ERROR]
    page: Page = logged_in_page(user=member(Role.VIEWER))
    page.goto("/admin/")
    page.locator("#nav-sidebar").get_by_role("link", name="Calls", exact=True).click()
    expect(page.locator("#result_list tbody tr")).to_have_count(len(calls))
    expect(page.locator('[data-total="calls"]')).to_have_text(str(len(calls)))

    page.get_by_role("button", name="Filters").click()
    filters = page.locator("#changelist-filter")
    filters.get_by_label(re.compile("By provider")).select_option("beta")
    filters.get_by_label(re.compile("By status")).select_option(label="Error")
    filters.get_by_role("button", name="Apply Filters").click()

    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(len(chosen))
    for row in rows.all():
        expect(row).to_contain_text("beta")
        expect(row).to_contain_text("Error")
    expect(page.get_by_role("heading", name="Totals of the filtered calls")).to_be_visible()
    expect(page.locator('[data-total="calls"]')).to_have_text(str(len(chosen)))
    expect(page.locator('[data-total="error_rate"]')).to_have_text("100.0%")
    assert browser_errors.console_errors == []


@pytest.mark.django_db(transaction=True)
def test_times_to_the_second_durations_rounded_words_for_streams_and_one_p50_everywhere(
    logged_in_page, browser_errors
):
    at = timezone.now().replace(microsecond=0) - timedelta(minutes=2, seconds=17)
    fast = call_record(at=at, latency_ms=1.5479749999940395, stream=True)
    fast.time_to_first_token_ms = 0.7301
    slow = [call_record(latency_ms=ms) for ms in (100.0, 300.0)]
    LlmCall.objects.bulk_create([fast, *slow])
    page: Page = logged_in_page(user=member(Role.VIEWER))

    page.goto(URL)
    row = page.locator("#result_list tbody tr", has_text=seconds_clock(at))
    expect(row).to_have_count(1)
    expect(row.locator(".field-streamed")).to_have_text("yes")
    expect(row.locator(".field-latency")).to_have_text("1.55 ms")
    expect(page.locator("#result_list .field-streamed", has_text="no")).to_have_count(2)
    expect(page.locator("#result_list img, #result_list .field-streamed span")).to_have_count(0)
    expect(page.locator('[data-total="p50"]')).to_have_text("100 ms")
    screenshot(page, "calls-list-truthful")

    page.goto(f"{URL}{fast.pk}/change/")
    content = page.locator("#content").inner_text()
    assert "1.55 ms" in content and "0.73 ms" in content and seconds_clock(at) in content
    assert "1.5479749999940395" not in page.content()
    screenshot(page, "calls-detail-truthful")

    page.goto("/admin/")
    expect(page.locator('[data-figure="hour.p50"]')).to_have_text("100 ms")
    assert browser_errors.console_errors == []
