from __future__ import annotations

from decimal import Decimal

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


class BudgetScope(models.TextChoices):
    API_KEY = "api_key", "API key"
    USER = "user", "User"
    END_USER = "end_user", "End user"
    WORKSPACE = "workspace", "Workspace"


class BudgetPeriod(models.TextChoices):
    """Calendar windows in UTC: a day from 00:00 UTC, a month from the 1st at 00:00 UTC."""

    DAY = "day", "Day (UTC)"
    MONTH = "month", "Month (UTC)"


MAX_BUDGET_LIMIT = Decimal("1000000000")
MAX_END_USER_LENGTH = 256  # as the call record's ``end_user``


class Budget(models.Model):
    """A spend limit in dollars per day or month for one API key, user, end user (the string
    callers send as OpenAI's ``user``) or workspace. At ``soft_limit_percent`` of it an alert
    is raised; at the limit new LLM calls are refused until the window resets
    (``budgets.py`` counts the spend).

    One budget per scope, target and period: the spend of a window is counted once per
    target, whichever budget reads it."""

    scope = models.CharField(max_length=16, choices=BudgetScope.choices)
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.CASCADE, related_name="budgets"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="budgets",
    )
    end_user = models.CharField(
        max_length=MAX_END_USER_LENGTH,
        blank=True,
        help_text="The end user, exactly as callers send it (OpenAI's 'user', X-Orchestra-User).",
    )
    workspace = models.ForeignKey(
        Workspace, null=True, blank=True, on_delete=models.CASCADE, related_name="budgets"
    )
    period = models.CharField(max_length=8, choices=BudgetPeriod.choices)
    limit = models.DecimalField(
        "limit (USD)",
        max_digits=14,
        decimal_places=4,
        validators=[MinValueValidator(Decimal("0.0001")), MaxValueValidator(MAX_BUDGET_LIMIT)],
        help_text="Dollars per period; new LLM calls are refused once the period's spend "
        "reaches it.",
    )
    soft_limit_percent = models.PositiveSmallIntegerField(
        default=80,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="An alert is raised once the period's spend reaches this share of the limit.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    TARGETS = {
        BudgetScope.API_KEY: "api_key",
        BudgetScope.USER: "user",
        BudgetScope.END_USER: "end_user",
        BudgetScope.WORKSPACE: "workspace",
    }

    class Meta:
        ordering = ["scope", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["api_key", "period"],
                condition=models.Q(scope="api_key"),
                name="unique_budget_per_api_key",
            ),
            models.UniqueConstraint(
                fields=["user", "period"],
                condition=models.Q(scope="user"),
                name="unique_budget_per_user",
            ),
            models.UniqueConstraint(
                fields=["end_user", "period"],
                condition=models.Q(scope="end_user"),
                name="unique_budget_per_end_user",
            ),
            models.UniqueConstraint(
                fields=["workspace", "period"],
                condition=models.Q(scope="workspace"),
                name="unique_budget_per_workspace",
            ),
        ]

    def __str__(self) -> str:
        if self.scope not in BudgetScope.values or self.period not in BudgetPeriod.values:
            return "budget"
        period = "Daily" if self.period == BudgetPeriod.DAY else "Monthly"
        return f"{period} budget of {self.target_text}"

    @property
    def target_id(self) -> str:
        """What the spend is counted under: the key's, user's or workspace's id, or the end
        user's string."""
        if self.scope == BudgetScope.END_USER:
            return self.end_user
        return str(getattr(self, f"{self.TARGETS[BudgetScope(self.scope)]}_id") or "")

    @property
    def target_text(self) -> str:
        scope = BudgetScope(self.scope)
        if scope == BudgetScope.END_USER:
            return f"end user {self.end_user!r}"
        return f"{scope.label.lower().replace('api', 'API')} {self.target_id}"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.scope not in BudgetScope.values:
            return  # the field's own validation says so
        wanted = self.TARGETS[BudgetScope(self.scope)]
        errors = {}
        for scope, field in self.TARGETS.items():
            value = self.end_user if field == "end_user" else getattr(self, f"{field}_id")
            if field == wanted and not value:
                errors[field] = f"A budget of scope {scope.label!r} names its {field}."
            elif field != wanted and value:
                errors[field] = f"Only a budget of scope {scope.label!r} names one."
        if errors:
            raise ValidationError(errors)
