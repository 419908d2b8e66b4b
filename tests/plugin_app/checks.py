from apps.core.health import CheckResult, health_check

WIDGET_STORE = {"status": "ok"}


@health_check("widget_store")
def widget_store() -> CheckResult:
    return CheckResult(WIDGET_STORE["status"], "widgets are stored")
