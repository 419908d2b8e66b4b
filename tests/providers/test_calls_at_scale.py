"""The Calls page and ``/api/v1/llm-calls`` stay bounded however many calls there are: the page
shows a default time window (the date filter widens it, a call id finds any call), counts
are estimated where an exact count would read many rows, the list sorts only by time (the
index), and the API pages by cursor, ``page`` and ``offset`` with the same query count
whatever the number of rows."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.providers.models import CallStatus, LlmCall
from apps.providers.selectors import EXACT_COUNT_UP_TO, llm_call_count, llm_call_page
from tests.dashboard.conftest import call_record, member
from tests.support.factories import api_key_issue, bearer

URL = "/admin/providers/llmcall/"
API = "/api/v1/llm-calls"
postgresql_only = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="the planner's estimate is PostgreSQL's"
)


def stored(count: int, *, start_minutes: int = 1, step_seconds: float = 30, **fields) -> list:
    now = timezone.now()
    calls = []
    for i in range(count):
        call = call_record(at=now - timedelta(minutes=start_minutes, seconds=i * step_seconds))
        for name, value in fields.items():
            setattr(call, name, value)
        calls.append(call)
    return LlmCall.objects.bulk_create(calls)


def newest_first(calls: list[LlmCall]) -> list[uuid.UUID]:
    return [c.pk for c in sorted(calls, key=lambda c: (c.created_at, c.pk), reverse=True)]


def viewer() -> Client:
    client = Client()
    client.force_login(member(Role.VIEWER))
    return client


def analyse() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {LlmCall._meta.db_table}")


# --- the Calls page ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_page_shows_the_last_24_hours_says_so_and_the_date_filter_widens_it():
    recent = stored(3)
    old = stored(2, start_minutes=30 * 60, request_id="req-old")
    client = viewer()

    response = client.get(URL)
    assert {c.pk for c in response.context["cl"].result_list} == {c.pk for c in recent}
    assert response.context["totals"].calls == 3
    html = response.content.decode()
    assert 'id="calls-window"' in html and "Showing the last 24 hours" in html
    assert "Totals of the calls of the last 24 hours" in html

    start = timezone.now() - timedelta(days=3)
    response = client.get(
        f"{URL}?created_at_from_0={start:%Y-%m-%d}&created_at_from_1={start:%H:%M:%S}"
    )
    assert {c.pk for c in response.context["cl"].result_list} == {c.pk for c in recent + old}
    assert response.context["totals"].calls == 5
    assert 'id="calls-window"' not in response.content.decode()

    # A call id finds a call of any age (the primary key); other words search the window.
    response = client.get(f"{URL}?q={old[0].pk}")
    assert [c.pk for c in response.context["cl"].result_list] == [old[0].pk]
    assert response.context["cl"].window_start is None
    assert list(client.get(f"{URL}?q=req-old").context["cl"].result_list) == []
    LlmCall.objects.filter(pk=recent[1].pk).update(request_id="req-new")
    response = client.get(f"{URL}?q=req-new")
    assert [c.pk for c in response.context["cl"].result_list] == [recent[1].pk]
    response = client.get(f"{URL}?q=fake-mod")
    assert {c.pk for c in response.context["cl"].result_list} == {c.pk for c in recent}


@pytest.mark.django_db
def test_the_page_sorts_only_by_time_whatever_column_is_asked():
    calls = stored(6)
    for index, call in enumerate(calls):
        call.provider_name = "zeta" if index % 2 else "alpha"
        call.latency_ms = 1000 - index
    LlmCall.objects.bulk_update(calls, ["provider_name", "latency_ms"])
    client = viewer()
    admin_columns = client.get(URL).context["cl"].list_display
    for column in ("provider_name", "latency", "tokens", "cost_shown"):
        index = admin_columns.index(column)
        for order in (str(index), f"-{index}"):
            response = client.get(f"{URL}?o={order}")
            assert response.status_code == 200
            shown = [c.pk for c in response.context["cl"].result_list]
            assert shown == newest_first(calls), (column, order)
    created = admin_columns.index("created")
    oldest_first = client.get(f"{URL}?o={created}").context["cl"].result_list
    assert [c.pk for c in oldest_first] == newest_first(calls)[::-1]
    html = client.get(URL).content.decode()
    assert f"o={created}" in html and f"o={admin_columns.index('latency')}" not in html


@pytest.mark.django_db
def test_a_few_calls_are_counted_exactly():
    stored(7)
    response = viewer().get(URL)
    assert response.context["cl"].result_count == 7
    assert response.context["cl"].paginator.count_exact is True
    assert 'data-count-exact="true"' in response.content.decode()


@postgresql_only
@pytest.mark.django_db
def test_many_calls_are_counted_by_the_planners_estimate_not_by_reading_them():
    calls = stored(EXACT_COUNT_UP_TO + 500, step_seconds=1)
    analyse()

    everything, exact = llm_call_count(calls=LlmCall.objects.all())
    assert not exact and abs(everything - len(calls)) <= len(calls) * 0.1
    with CaptureQueriesContext(connection) as queries:
        found, exact = llm_call_count(calls=LlmCall.objects.filter(provider_name="alpha"))
    assert not exact and abs(found - len(calls)) <= len(calls) * 0.1
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    assert counts and all(f"LIMIT {EXACT_COUNT_UP_TO + 1})" in sql for sql in counts), counts
    assert llm_call_count(calls=LlmCall.objects.filter(provider_name="nobody")) == (0, True)

    response = viewer().get(URL)
    assert response.context["cl"].paginator.count_exact is False
    assert 'data-count-exact="false"' in response.content.decode()
    assert "about " in response.content.decode()
    assert len(response.context["cl"].result_list) == 100  # the page, whatever the count

    # A deep offset reads the page's ids first, then those rows: the same calls, in order.
    order = newest_first(calls)
    offset = EXACT_COUNT_UP_TO + 123
    page = llm_call_page(calls=LlmCall.objects.all(), offset=offset, limit=50)
    assert [c.pk for c in page] == order[offset : offset + 50]


@pytest.mark.django_db
def test_the_page_makes_as_many_queries_for_many_calls_as_for_few():
    client = viewer()
    stored(3)
    query = "?provider_name=alpha&status__exact=success&caller=nobody-at-all"
    with CaptureQueriesContext(connection) as few:
        assert client.get(URL).status_code == 200
    with CaptureQueriesContext(connection) as few_filtered:
        assert client.get(URL + query).status_code == 200
    stored(60, start_minutes=5)
    with CaptureQueriesContext(connection) as many:
        assert client.get(URL).status_code == 200
    with CaptureQueriesContext(connection) as many_filtered:
        assert client.get(URL + query).status_code == 200
    assert len(many) == len(few)
    assert len(many_filtered) == len(few_filtered)


@pytest.mark.django_db
def test_the_page_reads_the_call_table_three_times_and_nothing_per_row():
    """The count, the page's rows (only the columns shown), and the totals with the median
    latency: the call table is read three times (four past ``EXACT_COUNT_UP_TO``, the
    planner's estimate), whatever the filters; the filters' choices are one query each
    (providers, models, workspaces)."""
    stored(60, workspace=None)
    client = viewer()
    client.get(URL)  # the caches a process fills once
    filtered = "?provider_name=alpha&status__exact=success&entry_point__exact=openai&q=fake"
    for query in ("", filtered):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(URL + query)
        assert len(response.context["cl"].result_list) == 60
        statements = [q["sql"] for q in queries.captured_queries]
        calls = [s for s in statements if '"providers_llmcall"' in s]
        assert len(calls) == 3, calls
        assert sum(1 for s in calls if '"providers_llmcall"."end_user"' in s) == 1  # the rows
        assert not any('"tags"' in s or '"error_message"' in s for s in calls)
        choices = [
            s for s in statements
            if s.startswith("SELECT") and any(
                f'FROM "{table}"' in s
                for table in ("providers_provider", "providers_llmmodel", "accounts_workspace")
            )
        ]  # fmt: skip
        assert len(choices) == 3, choices


# --- the API -----------------------------------------------------------------------------------


def api() -> APIClient:
    return APIClient(headers=bearer(api_key_issue(role=Role.VIEWER)))


@pytest.mark.django_db
def test_the_next_links_walk_every_call_once_newest_first_ties_broken_by_id():
    now = timezone.now()
    calls = stored(23)
    for call in calls[5:12]:  # several calls at one instant: the id orders them
        call.created_at = now - timedelta(minutes=3)
    LlmCall.objects.bulk_update(calls, ["created_at"])
    client = api()

    seen = []
    url: str | None = f"{API}?limit=5"
    pages = []
    while url:
        body = client.get(url).json()
        assert body["count"] == 23 and body["count_exact"] is True
        pages.append(body)
        seen += [row["id"] for row in body["results"]]
        url = body["next"]
    assert seen == [str(pk) for pk in newest_first(calls)]
    assert [len(p["results"]) for p in pages] == [5, 5, 5, 5, 3]
    assert "cursor=" in pages[1]["previous"]

    # The previous link of the fourth page gives the third page back.
    back = client.get(pages[3]["previous"]).json()
    assert [row["id"] for row in back["results"]] == [row["id"] for row in pages[2]["results"]]
    assert client.get(back["next"]).json()["results"] == pages[3]["results"]


@pytest.mark.django_db
def test_page_and_offset_answer_the_page_asked_for():
    calls = stored(12)
    order = [str(pk) for pk in newest_first(calls)]
    client = api()
    for page in (1, 2, 3):
        body = client.get(f"{API}?page={page}&limit=5").json()
        assert [row["id"] for row in body["results"]] == order[(page - 1) * 5 : page * 5]
        assert (body["previous"] is None) == (page == 1)
        assert (body["next"] is None) == (page == 3)
    assert "page=1" in client.get(f"{API}?page=2&limit=5").json()["previous"]
    assert client.get(f"{API}?page=4&limit=5").json()["results"] == []
    body = client.get(f"{API}?offset=7&limit=3").json()
    assert [row["id"] for row in body["results"]] == order[7:10]
    # page's next link is a cursor; following it goes on from the page
    follow = client.get(client.get(f"{API}?page=2&limit=5").json()["next"]).json()
    assert [row["id"] for row in follow["results"]] == order[10:12]
    # filters stay in the links
    body = client.get(f"{API}?status=success&limit=5").json()
    assert "status=success" in body["next"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    ["cursor=nonsense", "cursor=eyJ0IjogMX0", "page=0", "page=two", "limit=0", f"offset={10**19}"],
)
def test_a_position_that_is_not_one_is_a_400(query):
    response = api().get(f"{API}?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


@pytest.mark.django_db
def test_the_api_makes_as_many_queries_for_many_calls_as_for_few():
    client = api()
    stored(3)
    client.get(API)  # the key's first use stores its last-used time

    def queries(url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    few = queries(f"{API}?limit=2"), queries(f"{API}?page=2&limit=2")
    stored(40, start_minutes=10, status=CallStatus.ERROR)
    many = queries(f"{API}?limit=2"), queries(f"{API}?page=2&limit=2")
    assert many == few
