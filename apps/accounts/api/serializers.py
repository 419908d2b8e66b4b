from datetime import datetime

from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework import serializers

from ..models import MAX_RPM_LIMIT, MAX_TPM_LIMIT, ApiKey, Role, Workspace, WorkspaceMember
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
