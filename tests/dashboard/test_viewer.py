"""A viewer sees every page read-only: no write action shows in the browser, and the server
refuses each one sent anyway (with the viewer's own session, against the real daphne). An
operator, for contrast, does what the viewer may not."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.contrib import admin
from playwright.sync_api import Page, expect

from apps.accounts.models import ApiKey, Role
from apps.accounts.services import api_key_create
from apps.providers.models import CallRecordDeadLetter, LlmCall, LlmModel, Provider, RoutingSettings
from apps.providers.selectors import circuit_breaker_list
from apps.providers.services import provider_create
from tests.dashboard.conftest import call_record, member, open_circuit
from tests.support.browser import screenshot

pytestmark = pytest.mark.django_db(transaction=True)

SUBMIT_BUTTONS = '[name="_save"], [name="_continue"], [name="_addanother"]'
EDITABLE_INPUTS = "#content form input:not([type=hidden]):not([disabled]), #content form textarea"


@pytest.fixture
def records():
    """One object of each kind a viewer may read."""
    provider = provider_create(name="beta", kind="openai_compatible", base_url="http://127.0.0.1:9")
    model = LlmModel.objects.create(
        provider=provider,
        name="m",
        input_price_per_million=Decimal(1),
        output_price_per_million=Decimal(1),
    )
    call = call_record(provider_name="beta")
    call.save()
    owner = member(Role.OPERATOR)
    api_key, _ = api_key_create(user=owner, name="ci")
    open_circuit("beta")
    return {
        Provider: provider,
        LlmModel: model,
        RoutingSettings: RoutingSettings.objects.get_or_create()[0],
        LlmCall: call,
        CallRecordDeadLetter: CallRecordDeadLetter.objects.create(reason="x", payload="{}"),
        ApiKey: api_key,
        type(owner): owner,
    }


def circuit_of(name: str) -> str:
    return circuit_breaker_list(names=[name])[0].state


def admin_url(model, view: str, *args) -> str:
    from django.urls import reverse

    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_a_viewer_sees_no_write_action_anywhere(logged_in_page, records, browser_errors):
    page: Page = logged_in_page(user=member(Role.VIEWER))
    for model, obj in records.items():
        changelist = admin_url(model, "changelist")
        response = page.goto(changelist)
        assert response is not None
        if response.status == 403:  # a model the role may not read at all (users)
            continue
        assert response.status == 200, changelist
        content = page.locator("#content")
        expect(content.locator(f'a[href$="{admin_url(model, "add")}"]')).to_have_count(0)
        expect(page.locator("#header-inner").locator('a[href$="/add/"]')).to_have_count(0)
        expect(content.locator("input.action-select, select[name=action]")).to_have_count(0)

        page.goto(admin_url(model, "change", obj.pk))
        expect(page.locator("#content")).to_be_visible()
        expect(page.locator(SUBMIT_BUTTONS)).to_have_count(0)
        expect(page.locator(EDITABLE_INPUTS)).to_have_count(0)
        expect(page.get_by_role("link", name=re.compile("^Delete"))).to_have_count(0)

    page.goto("/admin/")
    expect(page.locator("#open-circuits")).to_contain_text("beta")
    expect(page.get_by_role("button", name=re.compile("^Reset"))).to_have_count(0)
    page.goto("/admin/circuits/")
    expect(page.get_by_text("Operators may reset a circuit.")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("^Reset"))).to_have_count(0)
    # Only the pages the role may not read at all (users) said so.
    assert all("/admin/auth/user/: " in e and "403" in e for e in browser_errors.console_errors)


def test_the_server_refuses_a_viewer_every_write(logged_in_page, records):
    page: Page = logged_in_page(user=member(Role.VIEWER))
    page.goto("/admin/")  # every page sets the CSRF cookie (the log-out form)
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")

    def post(url: str, form: dict | None = None, json: dict | None = None) -> int:
        headers = {"X-CSRFToken": token}
        if json is not None:
            return page.request.post(url, data=json, headers=headers).status
        return page.request.post(
            url,
            form={"csrfmiddlewaretoken": token, **(form or {})},
            headers=headers,
            max_redirects=0,
        ).status

    for model in admin.site._registry:
        assert post(admin_url(model, "add"), {"name": "x"}) == 403, model
    for model, obj in records.items():
        assert post(admin_url(model, "change", obj.pk), {"name": "x"}) == 403, model
        assert post(admin_url(model, "delete", obj.pk), {"post": "yes"}) == 403, model

    beta, api_key, letter = records[Provider], records[ApiKey], records[CallRecordDeadLetter]
    actions = [
        (Provider, beta, "reset_circuit"), (Provider, beta, "delete_selected"),
        (Provider, beta, "sync_models"), (ApiKey, api_key, "revoke"),
        (CallRecordDeadLetter, letter, "discard"), (CallRecordDeadLetter, letter, "requeue"),
    ]  # fmt: skip
    for model, obj, action in actions:
        form = {"action": action, "_selected_action": str(obj.pk), "index": "0", "post": "yes"}
        # Past the CSRF check (a 403 here could be that): the admin offers the viewer no
        # action, so it runs none and shows the list again.
        assert post(admin_url(model, "changelist"), form) in (200, 302), action
    assert circuit_of("beta") == "open"
    assert Provider.objects.filter(pk=beta.pk).exists()
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at is None
    assert CallRecordDeadLetter.objects.filter(pk=letter.pk).exists()

    assert post("/admin/circuits/", {"provider_name": "beta"}) == 403
    assert circuit_of("beta") == "open"
    assert post("/api/v1/providers", json={"name": "gamma", "kind": "openai"}) == 403
    assert post("/api/v1/circuit-breakers/beta/reset", json={}) == 403
    assert circuit_of("beta") == "open" and not Provider.objects.filter(name="gamma").exists()


def test_an_operator_resets_a_circuit_from_the_page(logged_in_page, records, browser_errors):
    page: Page = logged_in_page(user=member(Role.OPERATOR))
    page.goto("/admin/circuits/")
    row = page.locator('tr[data-provider="beta"]')
    expect(row.locator(".circuit-state")).to_have_text("open")
    row.get_by_role("button", name="Reset the circuit of beta").click()
    expect(page.get_by_text("The circuit of beta was reset: it is closed.")).to_be_visible()
    expect(row.locator(".circuit-state")).to_have_text("closed")
    assert circuit_of("beta") == "closed"
    screenshot(page, "circuits-after-reset")
    assert browser_errors.console_errors == []
