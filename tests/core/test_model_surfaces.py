"""Every model's editable fields against the surfaces that show and write it: its admin (the
change page, and the form where the admin may change the row) and its REST API (the output
serializers of the responses that return it, the input serializers of the requests whose
response is it). A field on the model that a surface silently lacks is a setting that does
nothing there (seen: a model's ``mode`` and a provider's ``responses_api`` missing from the API,
where a PATCH answered 200 and stored nothing).

The surfaces are found, not listed: the admin site's registry, and every API operation of the
OpenAPI schema with its request and response serializers. A field deliberately absent from a
surface is in the allow-lists below, each with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib import admin
from django.db import models
from django.test import RequestFactory
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.settings import spectacular_settings
from rest_framework import serializers

from tests.support.factories import user_create

STATE = "written by the platform as the work runs (or by its actions), never set directly"
OWNER = "the caller who makes it, never a field of the request"
PARENT = "named by the URL it is read or made under"
SEED = "the request API's payload names it differently (see the input serializer)"
SYNCED = "as the provider lists it (Sync models); not ours to set"
SECRET = "a secret: written through a write-only field, shown masked"

# label -> field -> why the API's input serializers do not take it.
NOT_IN_INPUT: dict[str, dict[str, str]] = {
    "accounts.ApiKey": {
        "user": OWNER + " (the admin picks the user)",
        "workspace": "set through /api/v1/workspaces (a workspace's api_keys)",
    },
    "agents.AgentTask": {
        "agent": PARENT,
        "created_by": OWNER,
        **dict.fromkeys(
            [
                "status",
                "output",
                "error",
                "celery_task_id",
                "attempts",
                "queued_at",
                "started_at",
                "finished_at",
                "heartbeat_at",
                "input_tokens",
                "output_tokens",
                "cost",
                "call_id",
            ],
            STATE,
        ),
    },
    "approvals.ApprovalRequest": {
        "kind": SEED,
        "action": SEED,
        "reference": SEED,
        "requested_by": OWNER,
        "required_role": "decided by the approval policy from the risk",
        "expires_at": "from expires_in_seconds or the policy's default",
        **dict.fromkeys(
            [
                "status",
                "escalated_at",
                "decided_by",
                "decision_notes",
                "decided_at",
                "self_decided",
            ],
            STATE,
        ),
    },
    "builds.Build": {
        "created_by": OWNER,
        **dict.fromkeys(
            [
                "status",
                "error",
                "started_at",
                "finished_at",
                "input_tokens",
                "output_tokens",
                "cost",
            ],
            STATE,
        ),
    },
    "builds.BuildTemplate": {"created_by": OWNER},
    "experiments.CanaryRollout": {
        "created_by": OWNER,
        **dict.fromkeys(["status", "current_step", "step_started_at", "finished_at"], STATE),
    },
    "experiments.Experiment": {
        "created_by": OWNER,
        **dict.fromkeys(
            ["status", "phase", "winner", "conclusion", "started_at", "stopped_at"], STATE
        ),
    },
    "experiments.TrackedEvent": {
        "experiment": PARENT,
        "kind": "the path: track/conversion or track/feedback",
        "phase": "the experiment's current phase",
        "variant": "the user's assigned variant",
    },
    "providers.LlmModel": {"owned_by": SYNCED, "upstream_created": SYNCED},
}

# label -> field -> why no output serializer of the API shows it.
NOT_IN_OUTPUT: dict[str, dict[str, str]] = {
    "agents.AgentActivity": {"agent": PARENT},
    "approvals.ApprovalAuditEntry": {"approval": PARENT},
    "artifacts.Artifact": {"file": "served at download_url; the storage path is not the API's"},
    "builds.Build": dict.fromkeys(["input_tokens", "output_tokens", "cost"], "under totals"),
    "builds.BuildEvent": {"build": PARENT},
}

# label -> field -> why the admin's change page does not show it as such.
NOT_IN_ADMIN: dict[str, dict[str, str]] = {
    "providers.Provider": {"extra_headers": SECRET + " (extra_headers_masked, new_extra_headers)"},
    "providers.LlmCall": {
        **dict.fromkeys(
            ["provider", "model"],
            "shown by name (provider_name, model_name), kept if it is deleted",
        ),
        "tags": "as key=value pairs (tags_shown)",
    },
    "artifacts.Artifact": {"file": "shown as stored_as and download", "content": "as preview"},
    "auth.User": {"groups": "one role field instead (accounts.forms; the role is a group)"},
    "approvals.ApprovalPolicyChange": {"changes": "as words (changes_shown)"},
}

# label -> field -> why the admin shows it but its form does not take it (the admin may change
# the row otherwise).
READ_ONLY_IN_ADMIN: dict[str, dict[str, str]] = {
    **NOT_IN_ADMIN,
    "auth.User": {
        "last_login": "Django's own",
        "date_joined": "Django's own",
        "is_staff": "follows the role (see accounts.roles)",
        **NOT_IN_ADMIN["auth.User"],
    },
    "axes.AccessAttempt": dict.fromkeys(
        [
            "username",
            "ip_address",
            "user_agent",
            "http_accept",
            "path_info",
            "get_data",
            "post_data",
            "failures_since_start",
        ],
        "django-axes counts failed logins; an admin reads them, or deletes one to unlock",
    ),
    "accounts.ApiKey": {"user": "a key's owner never changes"},
    "builds.BuildTemplate": {"created_by": OWNER},
    "experiments.Experiment": dict.fromkeys(
        ["status", "phase", "winner", "conclusion", "created_by", "started_at", "stopped_at"],
        STATE,
    ),
}


def _editable(model: type[models.Model]) -> list[str]:
    return [
        each.name
        for each in model._meta.get_fields()
        if getattr(each, "editable", False)
        and (each.concrete or each.many_to_many)
        and not each.auto_created
    ]


def _serializer_class(value: Any) -> type[serializers.BaseSerializer] | None:
    if isinstance(value, serializers.ListSerializer):
        value = value.child
    if isinstance(value, serializers.BaseSerializer):
        return type(value)
    if isinstance(value, type) and issubclass(value, serializers.BaseSerializer):
        return value
    return None


def _model_of(serializer: type[serializers.BaseSerializer]) -> type[models.Model] | None:
    return getattr(getattr(serializer, "Meta", None), "model", None)


@dataclass
class ApiSurface:
    model: type[models.Model]
    outputs: set[type] = field(default_factory=set)
    inputs: set[type] = field(default_factory=set)


def _api_surfaces() -> dict[str, ApiSurface]:
    """Each model the API returns, with the output serializers that return it and the input
    serializers of the requests (POST, PUT, PATCH) answered with it."""
    surfaces: dict[str, ApiSurface] = {}
    generator = SchemaGenerator()
    generator._initialise_endpoints()
    for path, _, method, view in generator._get_paths_and_endpoints():
        view.request = spectacular_settings.GET_MOCK_REQUEST(method, path, view, None)
        responses = view.schema.get_response_serializers()
        returned = [
            (serializer, model)
            for value in (responses.values() if isinstance(responses, dict) else [responses])
            if (serializer := _serializer_class(value)) and (model := _model_of(serializer))
        ]
        for serializer, model in returned:
            surfaces.setdefault(model._meta.label, ApiSurface(model)).outputs.add(serializer)
        request = _serializer_class(view.schema.get_request_serializer())
        if request is not None and returned and method in ("POST", "PUT", "PATCH"):
            surfaces[returned[0][1]._meta.label].inputs.add(request)
    return surfaces


def _serializer_fields(serializer: type[serializers.BaseSerializer], *, writable: bool) -> set[str]:
    names = set()
    for name, each in serializer().fields.items():  # type: ignore[attr-defined]
        if (writable and each.read_only) or (not writable and each.write_only):
            continue
        names.add(name)
        if each.source and each.source != "*":
            names.add(each.source.split(".")[0])
    return names


def _admin_shown(model_admin: Any, request: Any, obj: models.Model) -> set[str]:
    """What the change page shows: its fields, and fields a display method is ordered by (a
    status shown as a badge)."""
    shown: set[str] = set()
    for _, options in model_admin.get_fieldsets(request, obj):
        for entry in options["fields"]:
            shown.update(entry if isinstance(entry, list | tuple) else [entry])
    for name in list(shown):
        ordering = getattr(getattr(model_admin, name, None), "admin_order_field", None)
        if isinstance(ordering, str):
            shown.add(ordering)
    return shown


@pytest.fixture(scope="module")
def api_surfaces() -> dict[str, ApiSurface]:
    return _api_surfaces()


def _gaps(fields: list[str], present: set[str], allowed: dict[str, str]) -> list[str]:
    return [name for name in fields if name not in present and name not in allowed]


def test_every_editable_field_is_in_the_apis_output(api_surfaces) -> None:
    gaps = {}
    for label, surface in api_surfaces.items():
        shown = set().union(*(_serializer_fields(s, writable=False) for s in surface.outputs))
        if missing := _gaps(_editable(surface.model), shown, NOT_IN_OUTPUT.get(label, {})):
            gaps[label] = missing
    assert gaps == {}, f"fields no output serializer shows: {gaps}"


def test_every_editable_field_is_writable_through_the_api(api_surfaces) -> None:
    gaps = {}
    for label, surface in api_surfaces.items():
        if not surface.inputs:  # read-only through the API (call records, events)
            continue
        accepted = set().union(*(_serializer_fields(s, writable=True) for s in surface.inputs))
        if missing := _gaps(_editable(surface.model), accepted, NOT_IN_INPUT.get(label, {})):
            gaps[label] = missing
    assert gaps == {}, f"fields no input serializer takes (a PATCH would drop them): {gaps}"


@pytest.mark.django_db
def test_every_editable_field_is_shown_and_writable_in_the_admin() -> None:
    request = RequestFactory().get("/admin/")
    request.user = user_create(role=None)
    request.user.is_superuser = request.user.is_staff = True
    hidden, read_only = {}, {}
    for model, model_admin in admin.site._registry.items():
        label, obj = model._meta.label, model()
        fields = _editable(model)
        shown = _admin_shown(model_admin, request, obj)
        if missing := _gaps(fields, shown, NOT_IN_ADMIN.get(label, {})):
            hidden[label] = missing
        if model_admin.has_change_permission(request, obj):
            form = model_admin.get_form(request, obj, change=True)
            allowed = READ_ONLY_IN_ADMIN.get(label, {})
            if missing := _gaps(fields, set(form.base_fields), allowed):
                read_only[label] = missing
    assert hidden == {}, f"fields the admin's change page does not show: {hidden}"
    assert read_only == {}, f"fields the admin may not change (but the model may): {read_only}"


def test_allow_lists_name_real_fields() -> None:
    """An allow-list entry for a field that no longer exists would hide a future gap."""
    from django.apps import apps

    stale = [
        f"{label}.{name}"
        for allowed in (NOT_IN_INPUT, NOT_IN_OUTPUT, NOT_IN_ADMIN, READ_ONLY_IN_ADMIN)
        for label, names in allowed.items()
        for name in names
        if name not in _editable(apps.get_model(label))
    ]
    assert stale == []
