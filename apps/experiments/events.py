"""The live events of experiments, on ``experiments``: started, stopped, a new phase (a new
split of the traffic), a canary's step and its rollback. Assignments are not published: there
is one per user."""

from apps.core.events import Channel, EventType

CHANNELS = (Channel("experiments", "A/B experiments and canary rollouts: lifecycle and steps."),)

EVENT_TYPES = (
    EventType("experiment.started", "experiments", {"experiment": int, "name": str, "phase": int},
              "An experiment started: requests naming it now get its variants."),
    EventType(
        "experiment.stopped", "experiments",
        {"experiment": int, "name": str, "winner": str, "conclusion": str},
        "An experiment stopped; the winner ('' for none) and why.",
    ),
    EventType(
        "experiment.phase", "experiments",
        {"experiment": int, "name": str, "phase": int, "reason": str},
        "A running experiment's split or variants changed: a new phase began.",
    ),
    EventType(
        "canary.step", "experiments",
        {"canary": int, "experiment": int, "kind": str, "percentage": int, "phase": int,
         "message": str},
        "A canary started, moved its treatment to the next traffic step, or completed.",
    ),
    EventType(
        "canary.rolled_back", "experiments",
        {"canary": int, "experiment": int, "percentage": int, "phase": int, "message": str},
        "A canary's treatment was rolled back to 0% of the traffic, and why.",
    ),
)  # fmt: skip
