"""The GitHub connection: one row of runtime settings, edited by admins.

The token is stored encrypted (``apps.core.crypto``, as the providers' keys) and is
write-only: nothing the platform answers or logs carries it, only whether one is set.
"""

from __future__ import annotations

from django.db import models

MANAGE_PERMISSION = "github.change_githubsettings"


class GitHubSettings(models.Model):
    enabled = models.BooleanField(default=False)
    token_encrypted = models.TextField(blank=True, editable=False)
    owner = models.CharField(
        max_length=100, blank=True, help_text="The default owner (user or organisation)."
    )
    repo = models.CharField(max_length=100, blank=True, help_text="The default repository.")
    api_url = models.URLField(
        "API base URL",
        blank=True,
        help_text="GitHub Enterprise's API root (https://github.example.com/api/v3); blank: "
        "GITHUB_API_URL (https://api.github.com).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "GitHub settings"
        verbose_name_plural = "GitHub settings"

    def __str__(self) -> str:
        return "GitHub settings"

    @property
    def has_token(self) -> bool:
        return bool(self.token_encrypted)


class PullState(models.TextChoices):
    OPEN = "open"
    MERGED = "merged"
    CLOSED = "closed"


class BuildPullRequest(models.Model):
    """A pull request a build's publish step opened; beat refreshes the state of open ones."""

    build = models.ForeignKey(
        "builds.Build", on_delete=models.CASCADE, related_name="github_pull_requests"
    )
    step = models.OneToOneField(
        "builds.BuildStep",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="github_pull_request",
    )
    repository = models.CharField(max_length=201, help_text="owner/repo")
    number = models.PositiveIntegerField()
    url = models.URLField(max_length=500)
    title = models.CharField(max_length=256, blank=True)
    state = models.CharField(
        max_length=10, choices=PullState.choices, default=PullState.OPEN, db_index=True
    )
    head_branch = models.CharField(max_length=255)
    base_branch = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["repository", "number"], name="github_build_pull_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.repository}#{self.number}"
