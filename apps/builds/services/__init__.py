"""Builds' writes and actions, one module per topic; other modules import them from here.

- ``creation``: checking steps, creating builds, templates;
- ``cancel_retry``: cancelling and retrying a build;
- ``running``: running one step (the Celery task), idempotent per step;
- ``approvals``: a step's approval gate;
- ``sweep``: failing steps whose worker vanished, sending lost messages again;
- ``socket``: the ``/ws/`` protocol's ``build`` message;
- ``transitions``: the state changes the others share, kept as events and published.

A build's steps run one at a time: each step is its own Celery task (``builds.run_step``),
enqueued when the step before it succeeds, with the task id stored on the step before the
message leaves. Every state change is kept in ``BuildEvent`` and published on commit: the
build's status on ``builds`` and ``build:<id>``, each step's on ``build:<id>``, and while a step
runs its tokens on ``build:<id>`` as they arrive.
"""

from .approvals import APPROVAL_KIND, approval_decided_receiver
from .cancel_retry import build_cancel, build_retry
from .creation import (
    MAX_STEPS,
    STEP_FIELDS,
    TEMPLATE_FIELDS,
    StepSpec,
    build_create,
    build_create_from_template,
    build_steps_validate,
    build_template_create,
    build_template_delete,
    build_template_update,
)
from .running import build_step_run
from .socket import build_socket_action
from .sweep import builds_sweep

__all__ = [
    "APPROVAL_KIND",
    "MAX_STEPS",
    "STEP_FIELDS",
    "TEMPLATE_FIELDS",
    "StepSpec",
    "approval_decided_receiver",
    "build_cancel",
    "build_create",
    "build_create_from_template",
    "build_retry",
    "build_socket_action",
    "build_step_run",
    "build_steps_validate",
    "build_template_create",
    "build_template_delete",
    "build_template_update",
    "builds_sweep",
]
