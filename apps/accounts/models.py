from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone


class Role(models.TextChoices):
    """Roles are Django groups of the same name; ``roles.py`` says what each may do."""

    ADMIN = "admin", "Admin"
    OPERATOR = "operator", "Operator"
    VIEWER = "viewer", "Viewer"


class Platform(models.Model):
    """Holds the platform-wide permissions that no single model owns; it has no table."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_platform", "Can read everything on the platform"),
            ("operate_platform", "Can run queries and builds, decide approvals, edit providers"),
        ]

    def __str__(self) -> str:
        return "AI Orchestra"


MAX_RPM_LIMIT = 1_000_000
MAX_TPM_LIMIT = 1_000_000_000


class Workspace(models.Model):
    """A team, for attribution and budgets only: each LLM call is recorded against one
    workspace, that of the API key that made it, else that of its user. Roles are not
    workspaces' business: what a person may do stays their role's.

    A user is in at most one workspace (``WorkspaceMember``); a key is in at most one, which
    wins over its user's, so a person who works for two teams uses a key per team.
    """

    name = models.CharField(max_length=100, unique=True)
    description = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class WorkspaceMember(models.Model):
    """A user's one workspace (the user is unique here)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="members")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="workspace_membership"
    )
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["workspace", "user"]
        verbose_name = "workspace member"

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace}"


class ApiKeyQuerySet(models.QuerySet):
    def active(self) -> ApiKeyQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True, user__is_active=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiKey(models.Model):
    """A machine credential tied to a user. Only a SHA-256 of the key is stored.

    The key reads ``ao_<prefix>_<secret>``; the prefix is visible and indexed for lookup.
    ``rpm_limit``/``tpm_limit`` bound the LLM calls made with it per minute (``limits.py``).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100)
    workspace = models.ForeignKey(
        Workspace,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="api_keys",
        help_text="The workspace its calls are recorded against (empty: its user's).",
    )
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    rpm_limit = models.PositiveIntegerField(
        "RPM limit",
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_RPM_LIMIT)],
        help_text=f"LLM requests per minute (1-{MAX_RPM_LIMIT}; empty: no limit).",
    )
    tpm_limit = models.PositiveIntegerField(
        "TPM limit",
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_TPM_LIMIT)],
        help_text=(
            f"Tokens per minute (1-{MAX_TPM_LIMIT}; empty: no limit). Tokens are known once a "
            "call ends: requests are refused once the minute's tokens are spent."
        ),
    )

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} (ao_{self.prefix}_…)"

    @property
    def is_active(self) -> bool:
        if self.revoked_at is not None or not self.user.is_active:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()
