"""The Celery application; configuration comes from Django settings prefixed ``CELERY_``."""

import os
from typing import Any

from celery import Celery
from celery.signals import beat_init, worker_init

from apps.core.tracing import tracing_setup

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestra.settings.development")

app = Celery("orchestra")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect(weak=False)
def _worker_tracing(**kwargs: Any) -> None:
    tracing_setup(process="worker")


@beat_init.connect(weak=False)
def _beat_tracing(**kwargs: Any) -> None:
    tracing_setup(process="beat")
