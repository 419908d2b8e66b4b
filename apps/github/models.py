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
