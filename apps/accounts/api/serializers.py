from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework import serializers

from ..models import (
    MAX_BUDGET_LIMIT,
    MAX_END_USER_LENGTH,
    MAX_RPM_LIMIT,
    MAX_TPM_LIMIT,
    ApiKey,
    Budget,
    BudgetPeriod,
    BudgetScope,
    Role,
    Workspace,
    WorkspaceMember,
)
from ..services import user_role


class ApiKeyOutputSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.get_username", read_only=True)
    is_active = serializers.BooleanField(read_only=True)
    display = serializers.SerializerMethodField()

    class Meta:
        model = ApiKey
        fields = [
            "id", "name", "prefix", "display", "user", "created_at",
            "expires_at", "revoked_at", "last_used_at", "is_active", "rpm_limit", "tpm_limit",
            "workspace",
        ]  # fmt: skip

    def get_display(self, api_key: ApiKey) -> str:
        return f"ao_{api_key.prefix}_…"


class ApiKeyCreatedSerializer(ApiKeyOutputSerializer):
    """The new key with its secret (passed as ``context["raw_key"]``): shown once."""

    key = serializers.SerializerMethodField(
        help_text="The secret key. It is shown only in this answer."
    )

    class Meta(ApiKeyOutputSerializer.Meta):
        fields = [*ApiKeyOutputSerializer.Meta.fields, "key"]

    def get_key(self, api_key: ApiKey) -> str:
        return self.context["raw_key"]


class ApiKeyCreateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    rpm_limit = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=MAX_RPM_LIMIT,
        help_text="LLM requests per minute this key may make (empty: no limit).",
    )
    tpm_limit = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=MAX_TPM_LIMIT,
        help_text="Tokens per minute (empty: no limit); refused once the minute's are spent.",
    )

    def validate_expires_at(self, value: datetime | None) -> datetime | None:
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("Must be in the future.")
        return value


class MeOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.CharField(help_text="An email address, or empty when none is set.")
    role = serializers.CharField(allow_null=True)
    api_key = serializers.CharField(allow_null=True, help_text="Prefix of the key used, if any.")


class UserOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.CharField(help_text="An email address, or empty when none is set.")
    is_active = serializers.BooleanField()
    role = serializers.SerializerMethodField()
    workspace = serializers.SerializerMethodField(help_text="The user's workspace (its id).")

    def get_role(self, user: User) -> str | None:
        return user_role(user=user)

    def get_workspace(self, user: User) -> int | None:
        try:
            return user.workspace_membership.workspace_id
        except WorkspaceMember.DoesNotExist:
            return None


class RoleInputSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class WorkspaceOutputSerializer(serializers.ModelSerializer):
    members = serializers.SerializerMethodField(help_text="The ids of its users.")
    api_keys = serializers.SerializerMethodField(help_text="The ids of its API keys.")

    class Meta:
        model = Workspace
        fields = ["id", "name", "description", "created_at", "members", "api_keys"]

    def get_members(self, workspace: Workspace) -> list[int]:
        return sorted(member.user_id for member in workspace.members.all())

    def get_api_keys(self, workspace: Workspace) -> list[int]:
        return sorted(api_key.pk for api_key in workspace.api_keys.all())


class WorkspaceInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    members = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.all(),
        many=True,
        required=False,
        help_text="User ids: exactly the workspace's users (a user is in one workspace at most).",
    )
    api_keys = serializers.PrimaryKeyRelatedField(
        queryset=ApiKey.objects.all(),
        many=True,
        required=False,
        help_text="API key ids: exactly the workspace's keys (a key's workspace wins over its "
        "user's).",
    )


class BudgetOutputSerializer(serializers.ModelSerializer):
    """A budget with where it stands (``context["standings"]``: ``selectors.budget_standings``)."""

    spent = serializers.SerializerMethodField(
        help_text="Dollars spent in the current window, as counted (null while Redis does not "
        "answer)."
    )
    window_starts = serializers.SerializerMethodField(help_text="The current window's start (UTC).")
    resets_at = serializers.SerializerMethodField(
        help_text="When the current window ends and the spend starts again from zero (UTC)."
    )
    name = serializers.CharField(source="__str__", read_only=True)

    class Meta:
        model = Budget
        fields = [
            "id", "name", "scope", "api_key", "user", "end_user", "workspace", "period", "limit",
            "soft_limit_percent", "spent", "window_starts", "resets_at", "created_at",
            "updated_at",
        ]  # fmt: skip

    def _standing(self, budget: Budget) -> Any:
        return self.context["standings"][budget.pk]

    def get_spent(self, budget: Budget) -> str | None:
        spent = self._standing(budget).spent
        return None if spent is None else f"{spent:.8f}"

    def get_window_starts(self, budget: Budget) -> datetime:
        return self._standing(budget).window_starts

    def get_resets_at(self, budget: Budget) -> datetime:
        return self._standing(budget).resets_at


class BudgetInputSerializer(serializers.Serializer):
    scope = serializers.ChoiceField(choices=BudgetScope.choices)
    api_key = serializers.PrimaryKeyRelatedField(
        queryset=ApiKey.objects.all(), required=False, allow_null=True,
        help_text="The API key's id (scope api_key).",
    )  # fmt: skip
    user = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.all(), required=False, allow_null=True,
        help_text="The user's id (scope user).",
    )  # fmt: skip
    end_user = serializers.CharField(
        max_length=MAX_END_USER_LENGTH, required=False, allow_blank=True,
        help_text="The end user, exactly as callers send it (scope end_user).",
    )  # fmt: skip
    workspace = serializers.PrimaryKeyRelatedField(
        queryset=Workspace.objects.all(), required=False, allow_null=True,
        help_text="The workspace's id (scope workspace).",
    )  # fmt: skip
    period = serializers.ChoiceField(
        choices=BudgetPeriod.choices, help_text="A calendar day or month, in UTC."
    )
    limit = serializers.DecimalField(
        max_digits=14, decimal_places=4, min_value=Decimal("0.0001"),
        max_value=MAX_BUDGET_LIMIT, help_text="Dollars per period.",
    )  # fmt: skip
    soft_limit_percent = serializers.IntegerField(
        min_value=1, max_value=100, required=False,
        help_text="The share of the limit (percent) at which an alert is raised (80).",
    )  # fmt: skip
