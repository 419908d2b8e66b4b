"""Experiments' writes and actions, one module per topic; other modules import them from here.

- ``settings``: the one settings row (the switch, margins, canary defaults);
- ``variants``: checking and writing an experiment's variants;
- ``experiments``: create, change, start, stop;
- ``phases``: the phases of a running experiment;
- ``assignments``: the variant a user gets, conversions and feedback;
- ``canaries``: canary rollouts, judged step by step;
- ``common``: the switch's refusal and the announcement of a change.

Locks are taken experiment first, then its canary, everywhere, so that a stop and a canary's
step never wait on each other.

Every change that alters what requests get (start, stop, a new split, the settings) bumps the
shared version on commit, so every process's request hook reloads its snapshot. A running
experiment's split or variants never change in place: ``experiment_update`` and every canary
step start a new ``ExperimentPhase`` (published as ``experiment.phase``), whose users and
figures are counted apart. A canary's steps keep the phase's seed, so users only ever move from
the control to the treatment; any other new split re-randomises (a new seed).
"""

from .assignments import (
    VariantAnswer,
    assignment_record,
    conversion_track,
    experiment_variant_for_user,
    feedback_track,
)
from .canaries import (
    MAX_CANARY_STEPS,
    canaries_advance,
    canary_advance,
    canary_create,
    canary_problems,
    canary_rollback,
    canary_steps_validate,
)
from .common import CENT, HUNDRED, FeatureDisabledError, config_version_bump, version_key
from .experiments import (
    EXPERIMENT_FIELDS,
    experiment_create,
    experiment_start,
    experiment_stop,
    experiment_update,
)
from .settings import SETTINGS_FIELDS, experiment_settings_ensure, experiment_settings_update
from .variants import (
    CONFIG_FIELDS,
    MAX_VARIANTS,
    VARIANT_FIELDS,
    VariantSpec,
    percentage_from,
    variants_validate,
)

__all__ = [
    "CENT",
    "CONFIG_FIELDS",
    "EXPERIMENT_FIELDS",
    "HUNDRED",
    "MAX_CANARY_STEPS",
    "MAX_VARIANTS",
    "SETTINGS_FIELDS",
    "VARIANT_FIELDS",
    "FeatureDisabledError",
    "VariantAnswer",
    "VariantSpec",
    "assignment_record",
    "canaries_advance",
    "canary_advance",
    "canary_create",
    "canary_problems",
    "canary_rollback",
    "canary_steps_validate",
    "config_version_bump",
    "conversion_track",
    "experiment_create",
    "experiment_settings_ensure",
    "experiment_settings_update",
    "experiment_start",
    "experiment_stop",
    "experiment_update",
    "experiment_variant_for_user",
    "feedback_track",
    "percentage_from",
    "variants_validate",
    "version_key",
]
