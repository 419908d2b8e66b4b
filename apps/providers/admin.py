from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from .errors import ProviderError
from .models import LlmCall, LlmCallAttempt, LlmModel, Provider, RoutingSettings
from .services import (
    circuit_breaker_reset,
    provider_probe,
    provider_set_api_key,
    provider_sync_models,
)


class ProviderForm(forms.ModelForm):
    """The API key is write-only: never rendered back, blank keeps the stored one."""

    base_url = forms.URLField(
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text="Empty: the kind's default.",
    )
    api_key = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only. Leave blank to keep the stored key.",
    )
    clear_api_key = forms.BooleanField(required=False, help_text="Remove the stored key.")

    class Meta:
        model = Provider
        fields = [
            "name", "kind", "base_url", "enabled", "priority", "weight", "timeout_seconds",
            "max_retries", "rpm_limit", "tpm_limit", "extra_headers",
        ]  # fmt: skip

    def save(self, commit: bool = True) -> Provider:
        provider = super().save(commit=False)
        if self.cleaned_data.get("clear_api_key"):
            provider_set_api_key(provider=provider, api_key="")
        elif self.cleaned_data.get("api_key"):
            provider_set_api_key(provider=provider, api_key=self.cleaned_data["api_key"])
        if commit:
            provider.save()
        return provider


class LlmModelInline(admin.TabularInline):
    model = LlmModel
    fields = [
        "name", "display_name", "input_price_per_million", "output_price_per_million", "enabled",
    ]  # fmt: skip
    extra = 0


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    list_display = [
        "name", "kind", "enabled", "priority", "weight", "health_status", "health_latency_ms",
        "api_key_status",
    ]  # fmt: skip
    list_filter = ["kind", "enabled", "health_status"]
    search_fields = ["name", "base_url"]
    readonly_fields = [
        "api_key_status", "health_status", "health_latency_ms", "health_error",
        "health_checked_at", "created_at", "updated_at",
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
                    "extra_headers",
                ]
            },
        ),  # fmt: skip
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
        ),  # fmt: skip
    ]
    inlines = [LlmModelInline]
    actions = ["sync_models", "probe_health", "reset_circuit"]

    @admin.display(description="API key")
    def api_key_status(self, provider: Provider) -> str:
        return "set" if provider.has_api_key else "not set"

    @admin.action(description="Sync models from the provider", permissions=["change"])
    def sync_models(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        for provider in queryset:
            try:
                result = provider_sync_models(provider=provider)
            except ProviderError as error:
                self.message_user(request, f"{provider}: {error.message}", messages.ERROR)
            else:
                created = ", ".join(result.created) or "none"
                self.message_user(request, f"{provider}: new models {created}", messages.SUCCESS)

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
class LlmModelAdmin(admin.ModelAdmin):
    list_display = [
        "name", "provider", "display_name", "input_price_per_million",
        "output_price_per_million", "enabled", "aliases", "fallbacks",
    ]  # fmt: skip
    list_filter = ["enabled", "provider"]
    search_fields = ["name", "display_name", "provider__name"]
    list_select_related = ["provider"]


@admin.register(RoutingSettings)
class RoutingSettingsAdmin(admin.ModelAdmin):
    """A single row: applied by every process without a restart."""

    list_display = ["__str__", "strategy", "default_provider", "default_model", "fallback_enabled"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not RoutingSettings.objects.exists() and super().has_add_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class ReadOnlyAdminMixin:
    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class LlmCallAttemptInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = LlmCallAttempt
    fields = [
        "number", "provider_name", "model_name", "status", "error_code", "error_message",
        "http_status", "latency_ms", "started_at",
    ]  # fmt: skip
    readonly_fields = fields
    extra = 0


@admin.register(LlmCall)
class LlmCallAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The record of every LLM call; written by the core only."""

    list_display = [
        "created_at", "entry_point", "provider_name", "model_name", "status", "error_code",
        "input_tokens", "output_tokens", "cost", "latency_ms", "stream",
    ]  # fmt: skip
    list_filter = ["status", "entry_point", "provider_name", "stream", "created_at"]
    search_fields = ["id", "request_id", "requested_model", "model_name", "provider_name"]
    date_hierarchy = "created_at"
    inlines = [LlmCallAttemptInline]

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        return [field.name for field in LlmCall._meta.fields]
