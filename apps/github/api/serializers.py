"""An input serializer per write, an output serializer listing every published field (of the
settings, and of what the platform publishes of GitHub's answers)."""

from __future__ import annotations

from rest_framework import serializers

from apps.core.filters import DateTimeQueryField

from ..models import BuildPullRequest, GitHubSettings

NAME = r"^[A-Za-z0-9_.-]{1,100}$"


class GitHubSettingsOutputSerializer(serializers.ModelSerializer):
    has_token = serializers.BooleanField(read_only=True)
    effective_api_url = serializers.SerializerMethodField()
    # null until the settings are first saved (the defaults are shown before that)
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        model = GitHubSettings
        fields = [
            "enabled",
            "has_token",
            "owner",
            "repo",
            "api_url",
            "effective_api_url",
            "updated_at",
        ]

    def get_effective_api_url(self, row: GitHubSettings) -> str:
        from ..selectors import github_api_url

        return github_api_url(row)


class GitHubSettingsInputSerializer(serializers.Serializer):
    """``token`` is write-only: sent to set it, ``""`` to remove it, left out to keep it."""

    enabled = serializers.BooleanField(required=False)
    token = serializers.CharField(
        required=False, allow_blank=True, write_only=True, trim_whitespace=True, max_length=1000
    )
    owner = serializers.RegexField(NAME, required=False, allow_blank=True)
    repo = serializers.RegexField(NAME, required=False, allow_blank=True)
    api_url = serializers.URLField(required=False, allow_blank=True, max_length=200)


class GitHubRateLimitSerializer(serializers.Serializer):
    limit = serializers.IntegerField()
    remaining = serializers.IntegerField()
    reset = serializers.IntegerField(allow_null=True, help_text="Unix time of the reset.")


class GitHubConnectionTestOutputSerializer(serializers.Serializer):
    login = serializers.CharField()
    name = serializers.CharField(allow_blank=True)
    scopes = serializers.ListField(
        child=serializers.CharField(), allow_null=True,
        help_text="A classic token's scopes; null for fine-grained tokens (GitHub says none).",
    )  # fmt: skip
    rate_limit = GitHubRateLimitSerializer()
    api_url = serializers.CharField()


class GitHubUserRefSerializer(serializers.Serializer):
    login = serializers.CharField()
    id = serializers.IntegerField()
    html_url = serializers.CharField(allow_null=True)


class GitHubUserOutputSerializer(GitHubUserRefSerializer):
    name = serializers.CharField(allow_blank=True)
    type = serializers.CharField(allow_null=True)


class GitHubRepoOutputSerializer(serializers.Serializer):
    full_name = serializers.CharField()
    name = serializers.CharField()
    owner = serializers.CharField()
    private = serializers.BooleanField()
    description = serializers.CharField(allow_blank=True)
    default_branch = serializers.CharField(allow_null=True)
    html_url = serializers.CharField(allow_null=True)
    open_issues_count = serializers.IntegerField()


class GitHubIssueOutputSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    title = serializers.CharField()
    body = serializers.CharField(allow_blank=True)
    state = serializers.CharField()
    state_reason = serializers.CharField(allow_null=True)
    labels = serializers.ListField(child=serializers.CharField())
    assignees = serializers.ListField(child=serializers.CharField())
    user = GitHubUserRefSerializer(allow_null=True)
    comments = serializers.IntegerField()
    is_pull_request = serializers.BooleanField()
    html_url = serializers.CharField(allow_null=True)
    created_at = serializers.CharField(allow_null=True)
    updated_at = serializers.CharField(allow_null=True)
    closed_at = serializers.CharField(allow_null=True)


class GitHubCommentOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    body = serializers.CharField(allow_blank=True)
    user = GitHubUserRefSerializer(allow_null=True)
    html_url = serializers.CharField(allow_null=True)
    created_at = serializers.CharField(allow_null=True)


class GitHubPullOutputSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    title = serializers.CharField()
    body = serializers.CharField(allow_blank=True)
    state = serializers.CharField()
    draft = serializers.BooleanField()
    merged = serializers.BooleanField()
    head = serializers.CharField(allow_null=True)
    base = serializers.CharField(allow_null=True)
    user = GitHubUserRefSerializer(allow_null=True)
    html_url = serializers.CharField(allow_null=True)
    created_at = serializers.CharField(allow_null=True)
    updated_at = serializers.CharField(allow_null=True)
    merged_at = serializers.CharField(allow_null=True)
    closed_at = serializers.CharField(allow_null=True)


class GitHubPageSerializer(serializers.Serializer):
    page = serializers.IntegerField()
    per_page = serializers.IntegerField()
    next_page = serializers.IntegerField(allow_null=True)
    prev_page = serializers.IntegerField(allow_null=True)
    last_page = serializers.IntegerField(allow_null=True)


class GitHubIssuePageOutputSerializer(GitHubPageSerializer):
    results = GitHubIssueOutputSerializer(many=True)


class GitHubPullPageOutputSerializer(GitHubPageSerializer):
    results = GitHubPullOutputSerializer(many=True)


class GitHubPageInputSerializer(serializers.Serializer):
    page = serializers.IntegerField(min_value=1, max_value=10_000, default=1)
    per_page = serializers.IntegerField(min_value=1, max_value=100, default=30)
    sort = serializers.ChoiceField(
        ["created", "updated", "comments", "popularity", "long-running"], required=False
    )
    direction = serializers.ChoiceField(["asc", "desc"], required=False)


class GitHubIssueListInputSerializer(GitHubPageInputSerializer):
    state = serializers.ChoiceField(["open", "closed", "all"], default="open")
    labels = serializers.CharField(required=False, max_length=500, help_text="Comma-separated.")
    assignee = serializers.CharField(required=False, max_length=100)
    creator = serializers.CharField(required=False, max_length=100)
    mentioned = serializers.CharField(required=False, max_length=100)
    milestone = serializers.CharField(required=False, max_length=100)
    since = DateTimeQueryField(required=False)


class GitHubPullListInputSerializer(GitHubPageInputSerializer):
    state = serializers.ChoiceField(["open", "closed", "all"], default="open")
    head = serializers.CharField(required=False, max_length=200)
    base = serializers.CharField(required=False, max_length=200)


class GitHubIssueCreateInputSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=256)
    body = serializers.CharField(required=False, allow_blank=True, max_length=65536, default="")
    labels = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    assignees = serializers.ListField(child=serializers.CharField(max_length=100), required=False)


class GitHubIssueUpdateInputSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=256, required=False)
    body = serializers.CharField(required=False, allow_blank=True, max_length=65536)
    state = serializers.ChoiceField(["open", "closed"], required=False)
    state_reason = serializers.ChoiceField(["completed", "not_planned", "reopened"], required=False)
    labels = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    assignees = serializers.ListField(child=serializers.CharField(max_length=100), required=False)


class GitHubIssueCloseInputSerializer(serializers.Serializer):
    reason = serializers.ChoiceField(["completed", "not_planned"], default="completed")


class GitHubCommentInputSerializer(serializers.Serializer):
    body = serializers.CharField(max_length=65536)


class GitHubPullCreateInputSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=256)
    head = serializers.CharField(max_length=200, help_text="The branch to merge (or owner:branch).")
    base = serializers.CharField(max_length=200, help_text="The branch to merge into.")
    body = serializers.CharField(required=False, allow_blank=True, max_length=65536, default="")
    draft = serializers.BooleanField(default=False)


class BuildPullRequestOutputSerializer(serializers.ModelSerializer):
    build_title = serializers.CharField(source="build.title", read_only=True)

    class Meta:
        model = BuildPullRequest
        fields = [
            "id", "build", "build_title", "step", "repository", "number", "url", "title",
            "state", "head_branch", "base_branch", "created_at", "refreshed_at",
        ]  # fmt: skip


class BuildPullRequestListInputSerializer(serializers.Serializer):
    build = serializers.IntegerField(required=False, min_value=1, help_text="One build's only.")
