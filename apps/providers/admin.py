from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import Any, cast

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.html import format_html
from django.utils.timezone import localtime
from unfold.admin import ModelAdmin, TabularInline  # type: ignore[import-untyped]
from unfold.contrib.filters.admin import (  # type: ignore[import-untyped]
    BooleanRadioFilter,
    ChoicesDropdownFilter,
    DropdownFilter,
    RangeDateTimeFilter,
    TextFilter,
)
from unfold.views import ChangeList  # type: ignore[import-untyped]
from unfold.widgets import (  # type: ignore[import-untyped]
    UnfoldAdminPasswordWidget,
    UnfoldAdminTextareaWidget,
    UnfoldAdminTextInputWidget,
    UnfoldBooleanWidget,
)

from apps.accounts.models import ApiKey, Workspace
from apps.core.admin_support import ReadOnlyAdminMixin
from apps.core.tracing import trace_url

from .calls_list import calls_table
from .llm.errors import ProviderError
from .models import (
    MAX_API_KEY_LENGTH,
    ROUTING_SETTINGS_FIELDS,
    CallRecordDeadLetter,
    LlmCall,
    LlmCallAttempt,
    LlmModel,
    Provider,
    RoutingSettings,
    validate_extra_headers,
    validate_header_value,
)
from .selectors import (
    CALLS_PAGE_WINDOW,
    call_id,
    llm_call_count,
    llm_call_tagged,
    llm_call_totals,
    llm_call_window_start,
)
from .services import (
    PRICE_FIELDS,
    PROVIDER_FIELDS,
    UNCHANGED,
    call_record_dead_letters_requeue,
    circuit_breaker_reset,
    model_catalog_fill,
    model_prices_from_catalog,
    model_prices_typed,
    models_apply_catalog_prices,
    provider_create,
    provider_probe,
    provider_sync_models,
    provider_test,
    provider_update,
    routing_settings_update,
)


def _adopt(instance: Any, saved: Any) -> None:
    """Make the form's instance the row a service saved (inlines and the log refer to it)."""
    instance.pk = saved.pk
    instance.refresh_from_db()
    instance._state.adding = False


class WriteOnlyTextarea(UnfoldAdminTextareaWidget):
    """Never renders a value back, not even the one just submitted (like the key's field)."""

    def get_context(self, name: str, value: Any, attrs: Any) -> dict[str, Any]:
        return super().get_context(name, None, attrs)


class ProviderForm(forms.ModelForm):
    """Saves through ``provider_create`` / ``provider_update``, never straight to the row.

    The API key and the extra headers are write-only: never rendered back; blank keeps the
    stored ones (a change of base URL or kind removes them unless given again).
    """

    base_url = forms.CharField(
        required=False,
        max_length=500,
        label="Base URL",
        widget=UnfoldAdminTextInputWidget,
        help_text=Provider._meta.get_field("base_url").help_text,
    )
    api_key = forms.CharField(
        required=False,
        strip=True,
        label="New API key",
        max_length=MAX_API_KEY_LENGTH,
        validators=[validate_header_value],
        widget=UnfoldAdminPasswordWidget(attrs={"autocomplete": "new-password"}),
        help_text="Write-only. Leave blank to keep the stored key.",
    )
    clear_api_key = forms.BooleanField(
        required=False,
        label="Clear API key",
        widget=UnfoldBooleanWidget,
        help_text="Remove the stored key.",
    )
    new_extra_headers = forms.JSONField(
        required=False,
        label="Replace extra headers",
        validators=[validate_extra_headers],
        widget=WriteOnlyTextarea(attrs={"rows": 3, "autocomplete": "off"}),
        help_text='Write-only: a JSON object such as {"X-Api-Version": "2"} replaces every '
        "extra header; {} removes them; blank keeps them.",
    )

    class Meta:
        model = Provider
        fields = [
            "name", "kind", "base_url", "enabled", "priority", "weight", "timeout_seconds",
            "max_retries", "rpm_limit", "tpm_limit", "responses_api",
        ]  # fmt: skip

    def save(self, commit: bool = True) -> Provider:
        super().save(commit=False)  # writes nothing; sets up save_m2m, which the admin calls
        if commit:
            self.save_through_services()
        return self.instance

    def save_through_services(self) -> Provider:
        fields = {
            name: self.cleaned_data[name]
            for name in PROVIDER_FIELDS
            if name in self.cleaned_data and name != "extra_headers"
        }
        if self.cleaned_data.get("new_extra_headers") is not None:
            fields["extra_headers"] = self.cleaned_data["new_extra_headers"]
        api_key: Any = UNCHANGED
        if self.cleaned_data.get("clear_api_key"):
            api_key = ""
        elif self.cleaned_data.get("api_key"):
            api_key = self.cleaned_data["api_key"]
        if self.instance._state.adding:
            saved = provider_create(api_key="" if api_key is UNCHANGED else api_key, **fields)
        else:
            stored = Provider.objects.get(pk=self.instance.pk)
            saved = provider_update(provider=stored, api_key=api_key, **fields)
        _adopt(self.instance, saved)
        return self.instance


def _prices_note(model: LlmModel, form: forms.ModelForm) -> None:
    """Before a model's form is saved: prices a person changed are theirs from now on (the
    catalog keeps off them); a new model given no price gets the catalog's."""
    if PRICE_FIELDS & set(form.changed_data):
        model_prices_typed(model=model)
    elif model._state.adding:
        model_catalog_fill(model=model)


class LlmModelInline(TabularInline):
    model = LlmModel
    fields = [
        "name", "display_name", "input_price_per_million", "output_price_per_million",
        "price_source", "enabled",
    ]  # fmt: skip
    readonly_fields = ["price_source"]
    extra = 0


@admin.register(Provider)
class ProviderAdmin(ModelAdmin):
    form = ProviderForm
    list_display = [
        "name", "kind", "enabled", "priority", "weight", "health_status", "health_latency_ms",
        "api_key_status",
    ]  # fmt: skip
    list_filter = ["kind", "enabled", "health_status"]
    search_fields = ["name", "base_url"]
    readonly_fields = [
        "api_key_status", "extra_headers_masked", "health_status", "health_latency_ms",
        "health_error", "health_checked_at", "created_at", "updated_at",
    ]  # fmt: skip
    fieldsets = [
        (None, {"fields": ["name", "kind", "base_url", "enabled"]}),
        ("Credentials", {"fields": ["api_key_status", "api_key", "clear_api_key"]}),
        (
            "Routing",
            {
                "fields": [
                    "priority",
                    "weight",
                    "timeout_seconds",
                    "max_retries",
                    "rpm_limit",
                    "tpm_limit",
                    "responses_api",
                    "extra_headers_masked",
                    "new_extra_headers",
                ]
            },
        ),
        (
            "Health",
            {
                "fields": [
                    "health_status",
                    "health_latency_ms",
                    "health_error",
                    "health_checked_at",
                    "created_at",
                    "updated_at",
                ]
            },
        ),
    ]
    inlines = [LlmModelInline]
    actions = ["test_connection", "sync_models", "probe_health", "reset_circuit"]

    WRITE_ONLY = ("api_key", "clear_api_key", "new_extra_headers")

    def get_fieldsets(self, request: HttpRequest, obj: Provider | None = None) -> Any:
        """Who may only read sees no write-only inputs (they would read as empty values)."""
        fieldsets = super().get_fieldsets(request, obj)
        if self.has_change_permission(request, obj) or obj is None:
            return fieldsets
        return [
            (
                name,
                {**options, "fields": [f for f in options["fields"] if f not in self.WRITE_ONLY]},
            )
            for name, options in fieldsets
        ]

    @admin.display(description="API key")
    def api_key_status(self, provider: Provider) -> str:
        return "set" if provider.has_api_key else "not set"

    @admin.display(description="Extra headers")
    def extra_headers_masked(self, provider: Provider) -> str:
        """Names only: the values are as secret as the key."""
        return ", ".join(f"{name}: ********" for name in provider.extra_headers) or "none"

    def save_model(
        self, request: HttpRequest, obj: Provider, form: ProviderForm, change: bool
    ) -> None:
        before = Provider.objects.filter(pk=obj.pk).first() if change else None
        form.save_through_services()
        if before is None:
            return
        cleared_key = form.cleaned_data["clear_api_key"]
        cleared_headers = form.cleaned_data.get("new_extra_headers") == {}
        dropped = []
        if before.has_api_key and not obj.has_api_key and not cleared_key:
            dropped.append("API key")
        if before.extra_headers and not obj.extra_headers and not cleared_headers:
            dropped.append("extra headers")
        if dropped:
            self.message_user(
                request,
                f"{obj}: the base URL or kind changed, so the stored {' and '.join(dropped)} "
                "were removed; enter them again to send them to the new destination.",
                messages.WARNING,
            )

    def save_formset(
        self, request: HttpRequest, form: forms.ModelForm, formset: Any, change: bool
    ) -> None:
        if formset.model is LlmModel:
            for model_form in formset.forms:
                if model_form.has_changed() and model_form not in formset.deleted_forms:
                    model_form.instance.provider = form.instance
                    _prices_note(model_form.instance, model_form)
        super().save_formset(request, form, formset, change)

    @admin.action(description="Sync models from the provider", permissions=["change"])
    def sync_models(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        for provider in queryset:
            try:
                result = provider_sync_models(provider=provider)
            except ProviderError as error:
                self.message_user(request, f"{provider}: {error.message}", messages.ERROR)
            else:
                self.message_user(request, f"{provider}: {result.summary()}", messages.SUCCESS)

    @admin.action(description="Test the connection", permissions=["change"])
    def test_connection(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        for provider in queryset:
            result = provider_test(provider=provider)
            level = messages.SUCCESS if result.ok else messages.ERROR
            self.message_user(request, f"{provider}: {result.summary()}", level)

    @admin.action(description="Probe health now", permissions=["change"])
    def probe_health(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        for provider in queryset:
            probed = provider_probe(provider=provider)
            level = messages.SUCCESS if probed.health_status == "ok" else messages.WARNING
            detail = probed.health_error or f"{probed.health_latency_ms} ms"
            self.message_user(request, f"{provider}: {probed.health_status} ({detail})", level)

    @admin.action(description="Reset circuit breaker", permissions=["change"])
    def reset_circuit(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        for provider in queryset:
            circuit_breaker_reset(provider=provider)
        self.message_user(request, f"Reset {queryset.count()} circuit(s).", messages.SUCCESS)


@admin.register(LlmModel)
class LlmModelAdmin(ModelAdmin):
    """Prices typed here are a person's: the catalog never overwrites them, until *Go back to
    the catalog's prices*."""

    list_display = [
        "name", "provider", "display_name", "input_price_per_million",
        "output_price_per_million", "price_source", "context_window", "enabled", "aliases",
        "fallbacks",
    ]  # fmt: skip
    list_filter = ["enabled", "provider", "price_source"]
    search_fields = ["name", "display_name", "provider__name"]
    list_select_related = ["provider"]
    readonly_fields = ["price_source", "price_catalog", "prices_valid_from"]
    actions = ["apply_catalog_prices", "prices_from_catalog"]

    def save_model(
        self, request: HttpRequest, obj: LlmModel, form: forms.ModelForm, change: bool
    ) -> None:
        _prices_note(obj, form)
        super().save_model(request, obj, form, change)

    @admin.action(
        description="Apply catalog prices (keeps prices typed by a person)",
        permissions=["change"],
    )
    def apply_catalog_prices(self, request: HttpRequest, queryset: QuerySet[LlmModel]) -> None:
        result = models_apply_catalog_prices(models=queryset)
        self.message_user(request, result.summary(), messages.SUCCESS)

    @admin.action(
        description="Go back to the catalog's prices (drops prices typed by a person)",
        permissions=["change"],
    )
    def prices_from_catalog(self, request: HttpRequest, queryset: QuerySet[LlmModel]) -> None:
        for model in queryset.select_related("provider"):
            try:
                model_prices_from_catalog(model=model)
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.ERROR)
            else:
                self.message_user(
                    request, f"{model}: {model.price_catalog or model.get_price_source_display()}"
                )


@admin.register(RoutingSettings)
class RoutingSettingsAdmin(ModelAdmin):
    """A single row: applied by every process without a restart."""

    list_display = ["__str__", "strategy", "default_provider", "default_model", "fallback_enabled"]

    def save_model(
        self, request: HttpRequest, obj: RoutingSettings, form: forms.ModelForm, change: bool
    ) -> None:
        """Through ``routing_settings_update`` (the model's ranges show as form errors)."""
        fields = {k: v for k, v in form.cleaned_data.items() if k in ROUTING_SETTINGS_FIELDS}
        _adopt(obj, routing_settings_update(**fields))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not RoutingSettings.objects.exists() and super().has_add_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


def milliseconds(value: float | None) -> str:
    """A duration as the Calls pages show it: two decimals under 10 ms, whole ms above."""
    if value is None:
        return "—"
    return f"{value:.2f} ms" if value < 10 else f"{value:,.0f} ms"


def seconds_clock(value: datetime | None) -> str:
    """A time to the second, in the active time zone (the admin's default drops the seconds).
    ``strftime``: ``date_format`` took a tenth of the Calls page's time, for 100 rows."""
    return localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else "—"


ATTEMPT_FIELDS = (
    "number", "provider_name", "model_name", "status", "error_code", "error_message",
    "http_status", "latency", "started",
)  # fmt: skip


class LlmCallAttemptInline(ReadOnlyAdminMixin, TabularInline):
    model = LlmCallAttempt
    fields = ATTEMPT_FIELDS
    readonly_fields = ATTEMPT_FIELDS
    extra = 0

    @admin.display(description="Latency")
    def latency(self, attempt: LlmCallAttempt) -> str:
        return milliseconds(attempt.latency_ms)

    @admin.display(description="Started at")
    def started(self, attempt: LlmCallAttempt) -> str:
        return seconds_clock(attempt.started_at)


class ProviderNameFilter(DropdownFilter):
    """The providers configured now (a query of the providers table, not of the calls)."""

    title = "provider"
    parameter_name = "provider_name"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = Provider.objects.order_by("name").values_list("name", flat=True)
        return [(name, name) for name in names]

    def queryset(self, request: HttpRequest, queryset: QuerySet[LlmCall]) -> QuerySet[LlmCall]:
        value = self.value()
        return queryset.filter(provider_name=value) if value else queryset


class ModelNameFilter(DropdownFilter):
    """The models configured now, by the name the provider serves them under."""

    title = "model"
    parameter_name = "model_name"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = LlmModel.objects.order_by("name").values_list("name", flat=True).distinct()
        return [(name, name) for name in names]

    def queryset(self, request: HttpRequest, queryset: QuerySet[LlmCall]) -> QuerySet[LlmCall]:
        value = self.value()
        return queryset.filter(model_name=value) if value else queryset


class CallerFilter(TextFilter):
    """Who called: a username, or the prefix of an API key (``ao_<prefix>_...``)."""

    title = "caller (username or key prefix)"
    parameter_name = "caller"

    def queryset(self, request: HttpRequest, queryset: QuerySet[LlmCall]) -> QuerySet[LlmCall]:
        """The user and the keys are looked up first (small tables), so the calls are filtered
        by their ids, without a join of the call table."""
        value = (self.value() or "").strip()
        if not value:
            return queryset
        users = list(get_user_model().objects.filter(username=value).values_list("pk", flat=True))
        keys = list(ApiKey.objects.filter(prefix=value).values_list("pk", flat=True))
        return queryset.filter(Q(user_id__in=users) | Q(api_key_id__in=keys))


class WorkspaceFilter(DropdownFilter):
    """The workspaces there are now (a query of the workspaces table, not of the calls)."""

    title = "workspace"
    parameter_name = "workspace"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(pk), name) for pk, name in Workspace.objects.values_list("pk", "name")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[LlmCall]) -> QuerySet[LlmCall]:
        value = self.value()
        return queryset.filter(workspace_id=value) if value and value.isdigit() else queryset


class EndUserFilter(TextFilter):
    title = "end user"
    parameter_name = "end_user"

    def queryset(self, request: HttpRequest, queryset: QuerySet[LlmCall]) -> QuerySet[LlmCall]:
        value = (self.value() or "").strip()
        return queryset.filter(end_user=value) if value else queryset


class TagFilter(TextFilter):
    """One tag, ``key:value`` (a value that reads otherwise matches no call)."""

    title = "tag (key:value)"
    parameter_name = "tag"

    def queryset(self, request: HttpRequest, queryset: QuerySet[LlmCall]) -> QuerySet[LlmCall]:
        key, colon, value = (self.value() or "").strip().partition(":")
        if not (key and colon):
            return queryset
        return llm_call_tagged(calls=queryset, key=key, value=value)


class CallsPaginator(Paginator):
    """The Calls page's pages, counted by ``llm_call_count``: exactly when that reads few
    rows, else by the planner's estimate (``count_exact`` says which; the page says "about")."""

    template_name = "providers/llmcall_pagination.html"
    count_exact = True

    @cached_property
    def count(self) -> int:
        found, self.count_exact = llm_call_count(calls=cast(QuerySet[LlmCall], self.object_list))
        return found


class CallsChangeList(ChangeList):
    """The Calls list within its default window (``CALLS_PAGE_WINDOW``, the last 24 hours)
    unless the date filter is used or a call id is searched for: ``window_start`` says where
    it starts (None when there is no window)."""

    window_start: datetime | None = None

    # What the list's columns read; the call's other fields (its tags, error message...) are
    # read on its own page.
    COLUMNS = (
        "id", "created_at", "entry_point", "provider_name", "model_name", "status",
        "error_code", "input_tokens", "output_tokens", "cost", "latency_ms", "attempt_count",
        "stream", "workspace__name", "end_user",
    )  # fmt: skip

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> Any:
        calls = super().get_queryset(request, exclude_parameters).only(*self.COLUMNS)
        dated = any(name.startswith("created_at_") and value for name, value in request.GET.items())
        if dated or call_id(self.query or "") is not None:
            self.window_start = None
            return calls
        self.window_start = llm_call_window_start()
        return calls.filter(created_at__gte=self.window_start)

    def get_ordering_field(self, field_name: Any) -> Any:
        """Only the columns of ``sortable_by``: the admin's ``o`` parameter sorts by any column
        otherwise (``sortable_by`` alone only hides the other headers' links)."""
        if field_name not in self.sortable_by:
            return None
        return super().get_ordering_field(field_name)

    def get_ordering(self, request: HttpRequest, queryset: Any) -> list[Any]:
        """Newest first unless time is sorted the other way (``o`` naming only other columns
        would leave the primary key alone to order by)."""
        ordering = list(super().get_ordering(request, queryset))
        if not any(str(field).lstrip("-") == "created_at" for field in ordering):
            return ["-created_at", "-pk"]
        return ordering


@admin.register(LlmCall)
class LlmCallAdmin(ReadOnlyAdminMixin, ModelAdmin):
    """The Calls page: the record of every LLM call (written by the core only), with totals of
    the listed calls above the list. Bounded at any table size: the list shows the last 24
    hours unless the date filter widens it (``CallsChangeList``), each filter reads the
    ``created_at`` index within that window (provider and caller their own, with
    ``created_at``), the filters' choices come from the providers and models tables, the totals
    are one aggregate query of the window, the count is estimated where an exact one would read
    many rows (``CallsPaginator``), the list sorts only by time (the index), a call id is found
    by the primary key at any age, and the rows are rendered by ``calls_table``."""

    list_display = [
        "created", "entry_point", "provider_name", "model_name", "status", "error_code",
        "tokens", "cost_shown", "latency", "attempts", "streamed", "workspace", "end_user",
    ]  # fmt: skip
    list_select_related = ["workspace"]
    list_filter = [
        ("created_at", RangeDateTimeFilter),
        ProviderNameFilter,
        ModelNameFilter,
        ("status", ChoicesDropdownFilter),
        ("entry_point", ChoicesDropdownFilter),
        CallerFilter,
        WorkspaceFilter,
        EndUserFilter,
        TagFilter,
        ("stream", BooleanRadioFilter),
    ]
    list_filter_submit = True
    list_before_template = "providers/llmcall_totals.html"
    change_list_template = "providers/llmcall_change_list.html"  # rows by calls_table
    paginator = CallsPaginator
    sortable_by = ["created"]  # the (created_at, id) index; any other order sorts the window
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # a count per choice of every filter: unbounded
    search_fields = ["=request_id", "requested_model"]
    inlines = [LlmCallAttemptInline]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "id",
                    "request_id",
                    "created",
                    "entry_point",
                    "endpoint",
                    "streamed",
                    "status",
                    "finish_reason",
                    "error_code",
                    "error_message",
                ]
            },
        ),
        ("Caller", {"fields": ["user", "api_key", "workspace", "end_user", "tags_shown"]}),
        (
            "Routing",
            {"fields": ["requested_model", "provider_name", "model_name", "attempt_count"]},
        ),
        (
            "Usage",
            {
                "fields": [
                    "input_tokens",
                    "output_tokens",
                    "tokens_estimated",
                    "cost",
                    "latency",
                    "time_to_first_token",
                ]
            },
        ),
        (
            "Links",
            {"fields": ["experiment_variant_id", "build_id", "build_step_id", "agent_id", "trace"]},
        ),
    ]

    search_help_text = (
        "A call id (any age), or a request id or part of the requested model's name (within "
        "the time shown)."
    )

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        shown = ["created", "streamed", "latency", "time_to_first_token", "trace", "tags_shown"]
        return [field.name for field in LlmCall._meta.fields] + shown

    @admin.display(description="Created at", ordering="created_at")
    def created(self, call: LlmCall) -> str:
        return seconds_clock(call.created_at)

    @admin.display(description="Stream", ordering="stream")
    def streamed(self, call: LlmCall) -> str:
        """Words, not the admin's boolean icons: a red cross read as a failed call."""
        return "yes" if call.stream else "no"

    @admin.display(description="Time to first token", ordering="time_to_first_token_ms")
    def time_to_first_token(self, call: LlmCall) -> str:
        return milliseconds(call.time_to_first_token_ms)

    @admin.display(description="Trace id", ordering="trace_id")
    def trace(self, call: LlmCall) -> str:
        """The trace id, a link to the trace viewer when ``TRACE_VIEWER_URL`` is set."""
        url = trace_url(call.trace_id, settings.TRACE_VIEWER_URL)
        if url is None:
            return call.trace_id or "-"
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, call.trace_id)

    @admin.display(description="Tags")
    def tags_shown(self, call: LlmCall) -> str:
        return ", ".join(f"{key}={value}" for key, value in sorted(call.tags.items())) or "—"

    @admin.display(description="Tokens in / out", ordering="input_tokens")
    def tokens(self, call: LlmCall) -> str:
        return f"{call.input_tokens:,} / {call.output_tokens:,}"

    @admin.display(description="Cost", ordering="cost")
    def cost_shown(self, call: LlmCall) -> str:
        return f"${call.cost.normalize():f}" if call.cost else "$0"

    @admin.display(description="Latency", ordering="latency_ms")
    def latency(self, call: LlmCall) -> str:
        return milliseconds(call.latency_ms)

    @admin.display(description="Attempts", ordering="attempt_count")
    def attempts(self, call: LlmCall) -> int:
        return call.attempt_count

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[LlmCall], search_term: str
    ) -> tuple[QuerySet[LlmCall], bool]:
        """A call id (what the APIs answer with) finds that call by its primary key, or by its
        request id (both indexed); other words, the fields, within the page's window."""
        term = search_term.strip()
        if not term:
            return queryset, False
        found = call_id(term)
        if found is None:
            # request_id exactly, as its index holds it (iexact would read every row)
            return queryset.filter(Q(request_id=term) | Q(requested_model__icontains=term)), False
        return queryset.filter(Q(pk=found) | Q(request_id=term)), False

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[CallsChangeList]:
        return CallsChangeList

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> Any:
        response = super().changelist_view(request, extra_context)
        if isinstance(response, TemplateResponse) and response.context_data:
            changelist = response.context_data.get("cl")
            if changelist is not None:
                response.context_data |= calls_table(changelist)
                response.context_data["totals"] = llm_call_totals(calls=changelist.queryset)
                response.context_data["window_start"] = changelist.window_start
                response.context_data["window_hours"] = int(
                    CALLS_PAGE_WINDOW.total_seconds() // 3600
                )
        return response


@admin.register(CallRecordDeadLetter)
class CallRecordDeadLetterAdmin(ReadOnlyAdminMixin, ModelAdmin):
    """Call records the database refused, kept aside so the others were stored."""

    list_display = ["created_at", "call_id", "reason"]
    search_fields = ["call_id", "reason"]
    date_hierarchy = "created_at"
    readonly_fields = ["created_at", "call_id", "reason", "payload"]
    actions = ["requeue", "discard"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("providers.delete_callrecorddeadletter")

    @admin.action(description="Queue again to be stored", permissions=["delete"])
    def requeue(self, request: HttpRequest, queryset: QuerySet[CallRecordDeadLetter]) -> None:
        count = call_record_dead_letters_requeue(letters=queryset)
        self.message_user(request, f"Queued {count} record(s) again.", messages.SUCCESS)

    @admin.action(description="Discard", permissions=["delete"])
    def discard(self, request: HttpRequest, queryset: QuerySet[CallRecordDeadLetter]) -> None:
        count, _ = queryset.delete()
        self.message_user(request, f"Discarded {count} record(s).", messages.SUCCESS)
