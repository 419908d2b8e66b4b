"""Alerts (read, acknowledged by operators), notification channels (configured by admins: the
operator role gets no change permission on them; their URL is write-only) and the delivery
log."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from unfold.admin import ModelAdmin  # type: ignore[import-untyped]
from unfold.widgets import (  # type: ignore[import-untyped]
    UnfoldAdminPasswordWidget,
    UnfoldAdminSelectWidget,
    UnfoldAdminTextInputWidget,
    UnfoldBooleanWidget,
)

from apps.core.admin_support import OPERATE, ReadOnlyAdminMixin, acting_user, refusal

from .models import (
    Alert,
    AlertStatus,
    DeliveryStatus,
    NotificationChannel,
    NotificationDelivery,
    Severity,
)
from .services import (
    alert_acknowledge,
    notification_channel_create,
    notification_channel_test,
    notification_channel_update,
)


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = [
        "title",
        "severity",
        "status",
        "kind",
        "raised_at",
        "last_seen_at",
        "resolved_at",
    ]
    list_filter = ["status", "severity", "kind"]
    search_fields = ["title", "cause", "detail"]
    date_hierarchy = "raised_at"
    actions = ["acknowledge"]

    def has_acknowledge_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(OPERATE)

    @admin.action(description="Acknowledge", permissions=["acknowledge"])
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        done = 0
        for alert in queryset.filter(status=AlertStatus.OPEN):
            try:
                alert_acknowledge(alert=alert, by=acting_user(request))
                done += 1
            except (PermissionDenied, ValidationError) as error:
                self.message_user(request, f"{alert}: {refusal(error)}", messages.WARNING)
        self.message_user(request, f"{done} alert(s) acknowledged.")


class NotificationChannelForm(forms.ModelForm):
    """The URL is write-only: blank keeps the stored one."""

    url = forms.CharField(
        required=False,
        strip=True,
        max_length=2000,
        label="New URL",
        widget=UnfoldAdminPasswordWidget(attrs={"autocomplete": "new-password"}),
        help_text="An Apprise URL: mailtos://user:password@host, slack://tokens, "
        "msteams://..., pagerduty://..., json://host/path (a webhook) and more. Write-only: "
        "leave blank to keep the stored one.",
    )

    class Meta:
        model = NotificationChannel
        fields = ["name", "min_severity", "notify_resolved", "enabled"]
        widgets = {
            "name": UnfoldAdminTextInputWidget,
            "min_severity": UnfoldAdminSelectWidget(choices=Severity.choices),
            "notify_resolved": UnfoldBooleanWidget,
            "enabled": UnfoldBooleanWidget,
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.instance._state.adding and not cleaned.get("url"):
            self.add_error("url", "A new channel needs its URL.")
        return cleaned

    def save(self, commit: bool = True) -> NotificationChannel:
        super().save(commit=False)
        if commit:
            self.save_through_services()
        return self.instance

    def save_through_services(self) -> NotificationChannel:
        fields = {name: self.cleaned_data[name] for name in self.Meta.fields}
        try:
            if self.instance._state.adding:
                saved = notification_channel_create(url=self.cleaned_data["url"], **fields)
            else:
                stored = NotificationChannel.objects.get(pk=self.instance.pk)
                saved = notification_channel_update(
                    channel=stored, url=self.cleaned_data.get("url") or None, **fields
                )
        except ValidationError as error:
            raise forms.ValidationError(error.messages) from None
        self.instance.pk, self.instance.service = saved.pk, saved.service
        return self.instance


@admin.register(NotificationChannel)
class NotificationChannelAdmin(ModelAdmin):
    form = NotificationChannelForm
    list_display = ["name", "service", "min_severity", "notify_resolved", "enabled", "updated_at"]
    readonly_fields = ["service", "created_at", "updated_at"]
    actions = ["send_test"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = ["name", "service", "min_severity", "notify_resolved", "enabled"]
        if self.has_change_permission(request, obj) or obj is None:
            fields.insert(2, "url")
        return fields

    def save_model(
        self, request: HttpRequest, obj: NotificationChannel, form: Any, change: bool
    ) -> None:
        form.save_through_services()

    @admin.action(description="Send a test notification", permissions=["change"])
    def send_test(self, request: HttpRequest, queryset: QuerySet[NotificationChannel]) -> None:
        for channel in queryset:
            delivery = notification_channel_test(channel=channel)
            if delivery.status == DeliveryStatus.SENT:
                self.message_user(request, f"{channel.name}: sent.")
            else:
                self.message_user(
                    request, f"{channel.name}: not sent: {delivery.error}", messages.ERROR
                )


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = [
        "created_at",
        "channel",
        "event",
        "title",
        "status",
        "attempts",
        "sent_at",
        "error",
    ]
    list_filter = ["status", "event", "channel"]
    search_fields = ["title", "error"]
