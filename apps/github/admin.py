from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from unfold.admin import ModelAdmin  # type: ignore[import-untyped]

from .client import GitHubError
from .models import BuildPullRequest, GitHubSettings
from .selectors import github_connection_test
from .services import UNCHANGED, github_settings_update


class GitHubSettingsForm(forms.ModelForm):
    token = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only: leave blank to keep the stored token.",
    )
    clear_token = forms.BooleanField(required=False, label="Remove the stored token")
    api_url = forms.URLField(
        label="API base URL", required=False, assume_scheme="https",
        help_text=GitHubSettings._meta.get_field("api_url").help_text,
    )  # fmt: skip

    class Meta:
        model = GitHubSettings
        fields = ["enabled", "owner", "repo", "api_url"]


@admin.register(GitHubSettings)
class GitHubSettingsAdmin(ModelAdmin):
    """The connection, for admins; saving goes through ``github_settings_update``."""

    form = GitHubSettingsForm
    list_display = ["__str__", "enabled", "owner", "repo", "has_token", "updated_at"]
    actions = ["test_connection"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and not GitHubSettings.objects.exists()

    def save_model(self, request, obj, form, change) -> None:
        token = form.cleaned_data.get("token") or UNCHANGED
        if form.cleaned_data.get("clear_token"):
            token = ""
        fields = {name: form.cleaned_data[name] for name in GitHubSettingsForm.Meta.fields}
        saved = github_settings_update(token=token, **fields)
        obj.pk = saved.pk

    @admin.action(description="Test the connection")
    def test_connection(self, request: HttpRequest, queryset) -> None:
        try:
            test = github_connection_test()
        except GitHubError as error:
            self.message_user(request, f"GitHub: {error.detail}", messages.ERROR)
            return
        scopes = ", ".join(test["scopes"]) if test["scopes"] is not None else "fine-grained"
        self.message_user(
            request,
            f"Connected as {test['login']} (scopes: {scopes}); "
            f"{test['rate_limit']['remaining']}/{test['rate_limit']['limit']} calls left.",
            messages.SUCCESS,
        )


@admin.register(BuildPullRequest)
class BuildPullRequestAdmin(ModelAdmin):
    """The pull requests builds opened; beat refreshes their state. Read-only: GitHub is where
    they change."""

    list_display = ["__str__", "pull_link", "build_link", "state", "head_branch", "refreshed_at"]
    list_filter = ["state"]
    search_fields = ["repository", "title", "head_branch"]
    readonly_fields = [
        "build", "step", "repository", "number", "url", "title", "state", "head_branch",
        "base_branch", "created_at", "refreshed_at",
    ]  # fmt: skip
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Pull request")
    def pull_link(self, record: BuildPullRequest) -> str:
        return format_html('<a href="{}" rel="noopener">{}</a>', record.url, record.title or record)

    @admin.display(description="Build")
    def build_link(self, record: BuildPullRequest) -> str:
        url = reverse("admin:page-build-1", args=[record.build_id])
        return format_html('<a href="{}">#{}</a>', url, record.build_id)
