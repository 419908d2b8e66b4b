from django.apps import AppConfig
from django.db.models.signals import m2m_changed, post_migrate

# What other apps may import of this app (tests/core/test_structure.py holds every app to its
# face).
PUBLIC = frozenset(
    {
        "admission",
        "authentication",
        "limits",
        "middleware",
        "models",
        "permissions",
        "principals",
        "selectors",
        "services",
        "throttles",
    }
)


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"
    verbose_name = "Accounts and API keys"

    def ready(self) -> None:
        from django.contrib.auth.models import User

        from apps.core.registry import (
            AlertRule,
            NavItem,
            register_alert_rule,
            register_navigation,
        )

        from . import principals, schema  # noqa: F401  (signal receivers, OpenAPI auth scheme)
        from .budgets import soft_limit_firings
        from .roles import roles_sync_after_migrate, staff_follows_role

        register_navigation(
            NavItem("API keys", "admin:accounts_apikey_changelist", "Accounts", icon="key",
                    permission="accounts.view_apikey", order=900),
            NavItem("Users", "admin:auth_user_changelist", "Accounts", icon="person",
                    permission="auth.view_user", order=910),
            NavItem("Workspaces", "admin:accounts_workspace_changelist", "Accounts",
                    icon="workspaces", permission="accounts.view_workspace", order=915),
            NavItem("Budgets", "admin:accounts_budget_changelist", "Accounts", icon="savings",
                    permission="accounts.view_budget", order=917),
            NavItem("Roles (groups)", "admin:auth_group_changelist", "Accounts", icon="group",
                    permission="auth.view_group", order=920),
            NavItem("Login lockouts", "admin:axes_accessattempt_changelist", "Accounts",
                    icon="lock_person", permission="axes.view_accessattempt", order=930),
        )  # fmt: skip

        register_alert_rule(
            AlertRule(
                "budget_soft_limit",
                "A budget's spend in its current day or month has reached its soft limit "
                "(once per window; critical once the budget is spent).",
                soft_limit_firings,
            )
        )

        post_migrate.connect(roles_sync_after_migrate, dispatch_uid="accounts.roles_sync")
        m2m_changed.connect(
            staff_follows_role, sender=User.groups.through, dispatch_uid="accounts.staff_role"
        )
