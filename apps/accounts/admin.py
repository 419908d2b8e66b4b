import threading
from typing import Any

from axes.admin import AccessAttemptAdmin as BaseAccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group, User
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html_join
from django.utils.safestring import SafeString, mark_safe
from unfold.admin import ModelAdmin, TabularInline  # type: ignore[import-untyped]
from unfold.forms import AdminPasswordChangeForm  # type: ignore[import-untyped]

from apps.core.registry import object_figures_for

from .forms import UserRoleChangeForm, UserRoleCreationForm
from .models import ApiKey, Budget, Role, Workspace, WorkspaceMember
from .selectors import BudgetStanding, budget_standings
from .services import api_key_create, api_key_revoke, user_role, user_set_role


def figures_of(obj: Any) -> SafeString | str:
    """The figures other apps register for this object (``ObjectFigure``), one a line."""
    found = object_figures_for(obj._meta.label_lower) if obj.pk else []
    if not found:
        return "—"
    return format_html_join(
        mark_safe("<br>"), "{}: {}", ((figure.title, figure.value(obj)) for figure in found)
    )


# Django registers these with its own ModelAdmins; the dashboard's look needs unfold's.
admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class UserAdmin(BaseUserAdmin, ModelAdmin):
    """A person's role is one field of the form (one of the role groups underneath; ``is_staff``
    follows it, see ``roles.py``): no groups picker nor raw permissions. A superuser also sees
    *Superuser status* and the individual permissions, under *Advanced*."""

    form = UserRoleChangeForm
    add_form = UserRoleCreationForm
    change_password_form = AdminPasswordChangeForm
    list_display = [
        "username", "email", "first_name", "last_name", "role", "workspace", "is_active",
    ]  # fmt: skip
    list_filter = ["groups", "is_active", "is_superuser"]
    readonly_fields = ["is_staff", "last_login", "date_joined", "figures"]
    add_fieldsets = [(None, {"fields": ["username", "password1", "password2", "role"]})]
    fieldsets = [
        (None, {"fields": ["username", "password"]}),
        ("Personal info", {"fields": ["first_name", "last_name", "email"]}),
        ("Access", {"fields": ["role", "is_active", "is_staff"]}),
        ("Important dates", {"fields": ["last_login", "date_joined"]}),
    ]
    advanced_fieldset = (
        "Advanced",
        {"fields": ["is_superuser", "user_permissions"], "classes": ["collapse"]},
    )

    def get_fieldsets(self, request: HttpRequest, obj: User | None = None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None:
            fieldsets = [*fieldsets, ("Figures", {"fields": ["figures"]})]
        if obj is not None and request.user.is_superuser:
            return [*fieldsets, self.advanced_fieldset]
        return fieldsets

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        queryset = super().get_queryset(request).select_related("workspace_membership__workspace")
        return queryset.prefetch_related("groups")

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        user_set_role(user=form.instance, role=Role(form.cleaned_data["role"]))

    @admin.display(description="Role")
    def role(self, user: User) -> str:
        role = user_role(user=user)
        return role.label if role else "—"

    @admin.display(description="Figures")
    def figures(self, user: User) -> SafeString | str:
        return figures_of(user)

    @admin.display(description="Workspace")
    def workspace(self, user: User) -> str:
        try:
            return user.workspace_membership.workspace.name
        except WorkspaceMember.DoesNotExist:
            return "—"


@admin.register(Group)
class GroupAdmin(BaseGroupAdmin, ModelAdmin):
    pass


@admin.register(AccessAttempt)
class LoginLockoutAdmin(BaseAccessAttemptAdmin, ModelAdmin):
    """django-axes' failed logins per username and address (the lockout); deleting one clears
    it. Passwords are masked in the stored form data (``AXES_SENSITIVE_PARAMETERS``)."""


@admin.register(ApiKey)
class ApiKeyAdmin(ModelAdmin):
    """The secret is shown once, in the message after creation; only its hash is stored."""

    list_display = [
        "name", "display_prefix", "user", "workspace", "created_at", "expires_at",
        "last_used_at", "revoked_at", "rpm_limit", "tpm_limit", "active",
    ]  # fmt: skip
    list_filter = [
        ("revoked_at", admin.EmptyFieldListFilter), "workspace", "expires_at", "created_at",
    ]  # fmt: skip
    list_select_related = ["user", "workspace"]
    search_fields = ["name", "prefix", "user__username", "user__email"]
    autocomplete_fields = ["user", "workspace"]
    fields = [
        "user",
        "name",
        "workspace",
        "expires_at",
        "rpm_limit",
        "tpm_limit",
        "display_prefix",
        "created_at",
        "last_used_at",
        "revoked_at",
        "figures",
    ]
    readonly_fields = ["display_prefix", "created_at", "last_used_at", "revoked_at", "figures"]
    actions = ["revoke"]

    @admin.display(description="Key")
    def display_prefix(self, api_key: ApiKey) -> str:
        return f"ao_{api_key.prefix}_…" if api_key.prefix else "—"

    @admin.display(description="Figures")
    def figures(self, api_key: ApiKey) -> SafeString | str:
        return figures_of(api_key)

    @admin.display(boolean=True)
    def active(self, api_key: ApiKey) -> bool:
        return api_key.is_active

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None):
        fields = super().get_fields(request, obj)
        return fields if obj is not None else [f for f in fields if f != "figures"]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None):
        if obj is None:
            return self.readonly_fields
        return [*self.readonly_fields, "user"]

    def save_model(self, request: HttpRequest, obj: ApiKey, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        api_key, raw_key = api_key_create(
            user=obj.user,
            name=obj.name,
            expires_at=obj.expires_at,
            rpm_limit=obj.rpm_limit,
            tpm_limit=obj.tpm_limit,
        )
        if obj.workspace is not None:
            api_key.workspace = obj.workspace
            api_key.save(update_fields=["workspace"])
        obj.pk, obj.prefix, obj.created_at = api_key.pk, api_key.prefix, api_key.created_at
        messages.warning(
            request,
            f"API key created: {raw_key} — copy it now, it will not be shown again.",
        )

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset:
            api_key_revoke(api_key=api_key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)


class WorkspaceMemberInline(TabularInline):
    model = WorkspaceMember
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "added_at"]
    readonly_fields = ["added_at"]


class WorkspaceApiKeyInline(TabularInline):
    """The workspace's keys, shown; a key joins or leaves it on its own page (a key is made
    on the API keys page, where its secret is shown once)."""

    model = ApiKey
    extra = 0
    max_num = 0
    can_delete = False
    fields = ["name", "user", "display_prefix", "revoked_at"]
    readonly_fields = fields
    verbose_name_plural = "API keys (set on each key's page)"

    @admin.display(description="Key")
    def display_prefix(self, api_key: ApiKey) -> str:
        return f"ao_{api_key.prefix}_…"


@admin.register(Workspace)
class WorkspaceAdmin(ModelAdmin):
    """A team, for attribution and budgets: each call is recorded against its key's workspace,
    else its user's. A user is in one workspace at most."""

    list_display = ["name", "description", "member_count", "key_count", "created_at"]
    search_fields = ["name"]
    fields = ["name", "description", "created_at"]
    readonly_fields = ["created_at"]
    inlines = [WorkspaceMemberInline, WorkspaceApiKeyInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Workspace]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                members_count=Count("members", distinct=True),
                keys_count=Count("api_keys", distinct=True),
            )
        )

    @admin.display(description="Members", ordering="members_count")
    def member_count(self, workspace: Workspace) -> int:
        return workspace.members_count  # type: ignore[attr-defined]

    @admin.display(description="API keys", ordering="keys_count")
    def key_count(self, workspace: Workspace) -> int:
        return workspace.keys_count  # type: ignore[attr-defined]


@admin.register(Budget)
class BudgetAdmin(ModelAdmin):
    """Spend limits per day or month (UTC); each row shows its spend in the current window (as
    counted in Redis) and when the window resets."""

    list_display = [
        "__str__", "scope", "period", "limit", "soft_limit_percent", "spent", "resets_at",
    ]  # fmt: skip
    list_filter = ["scope", "period"]
    search_fields = ["end_user", "api_key__name", "user__username", "workspace__name"]
    autocomplete_fields = ["api_key", "user", "workspace"]
    fields = [
        "scope", "api_key", "user", "end_user", "workspace", "period", "limit",
        "soft_limit_percent", "spent", "resets_at", "created_at", "updated_at",
    ]  # fmt: skip
    readonly_fields = ["spent", "resets_at", "created_at", "updated_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Budget]:
        return super().get_queryset(request).select_related("api_key", "user", "workspace")

    # The rows of the page being rendered, read from Redis in one round trip the first time one
    # of them is shown (per thread: the admin serves requests in several).
    _local = threading.local()

    def _standing(self, budget: Budget) -> BudgetStanding | None:
        if budget.pk is None:
            return None
        standings = getattr(self._local, "standings", {})
        if budget.pk not in standings:
            page = getattr(self._local, "page", [])
            self._local.standings = standings = budget_standings(
                page if budget in page else [budget]
            )
        return standings.get(budget.pk)

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        self._local.page, self._local.standings = list(changelist.result_list), {}
        return changelist

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        self._local.page, self._local.standings = [], {}
        return super().get_object(request, object_id, from_field)

    @admin.display(description="Spent this window")
    def spent(self, budget: Budget) -> str:
        standing = self._standing(budget)
        if standing is None:
            return "-"
        if standing.spent is None:
            return "unknown (Redis does not answer)"
        share = standing.share_of(budget.limit) or 0.0
        return f"${standing.spent:.4f} ({share:.0%})"

    @admin.display(description="Resets at")
    def resets_at(self, budget: Budget) -> str:
        standing = self._standing(budget)
        return f"{standing.resets_at:%Y-%m-%d %H:%M} UTC" if standing else "-"
