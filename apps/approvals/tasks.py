from celery import shared_task

from .services import approvals_escalate_overdue, approvals_expire_overdue


@shared_task(name="approvals.expire_overdue", ignore_result=True)
def expire_overdue() -> int:
    return approvals_expire_overdue()


@shared_task(name="approvals.escalate_overdue", ignore_result=True)
def escalate_overdue() -> int:
    return approvals_escalate_overdue()
