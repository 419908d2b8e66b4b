from apps.core.health import DISABLED, ERROR, OK, CheckResult, health_check

from .client import GitHubError
from .selectors import github_connection_test, github_settings_get


@health_check("github", title="GitHub", cache_seconds=60.0, needs_database=True)
def github() -> CheckResult:
    """``ok`` when GitHub accepts the token, ``disabled`` when the connection is off, ``error``
    saying what failed otherwise (the platform is then degraded, never down). Cached a minute:
    each run is one call to GitHub (``/user``)."""
    if not github_settings_get().enabled:
        return CheckResult(DISABLED, "The GitHub connection is disabled.")
    try:
        test = github_connection_test()
    except GitHubError as error:
        return CheckResult(ERROR, str(error.detail))
    return CheckResult(
        OK,
        f"Connected as {test['login']}; {test['rate_limit']['remaining']} calls left.",
        {"login": test["login"], "rate_limit_remaining": test["rate_limit"]["remaining"]},
    )
