"""The Playground: try the LLM core from the browser, over the WebSocket protocol.

The page sends ``stream`` messages through ``live.js`` (the session cookie authenticates the
socket) and shows the tokens as they come, then what the stream's ``done`` says: provider,
latency, time to first token, tokens, cost and the call record. The server decides who may
send: the ``/ws/`` consumer refuses queries of a role without ``accounts.operate_platform``;
this view only hides the form from them.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from apps.accounts.permissions import OPERATE
from apps.providers.llm import RoutingStrategy
from apps.providers.selectors import public_model_list, routing_policy_current

# Replaced by the call record's id in the page (a UUID, as the admin's URL takes).
CALL_PLACEHOLDER = "00000000-0000-0000-0000-000000000000"
MAX_TOKENS_OFFERED = 1_000_000  # the form's ceiling; the core accepts up to 2**31 - 1


def playground(request: HttpRequest) -> HttpResponse:
    models = public_model_list()
    policy = routing_policy_current()
    names = [model["name"] for model in models]
    return TemplateResponse(
        request,
        "dashboard/playground.html",
        {
            "models": models,
            "providers": sorted({name for model in models for name in model["providers"]}),
            # The routing settings' default model when it is served, else the first one.
            "selected_model": policy.default_model
            if policy.default_model in names
            else next(iter(names), ""),
            "strategies": RoutingStrategy.choices,
            "current_strategy": RoutingStrategy(policy.strategy).label,
            "can_send": request.user.has_perm(OPERATE),
            "can_view_calls": request.user.has_perm("providers.view_llmcall"),
            "call_placeholder": CALL_PLACEHOLDER,
            "max_tokens_offered": MAX_TOKENS_OFFERED,
            "live_channels": "",
        },
    )
