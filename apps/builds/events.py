"""The live events of builds: every build's status on ``builds``; one build's status, steps and
tokens on ``build:<id>``."""

from apps.core.events import Channel, EventType, FieldTypes

CHANNELS = (
    Channel("builds", "Every build's status changes."),
    Channel("build", "One build: its status, its steps, each step's tokens as they stream.",
            per_object=True),
)  # fmt: skip

BUILD: dict[str, FieldTypes] = {"build": int, "title": str, "status": str, "error": str}

EVENT_TYPES = (
    EventType("build.updated", "builds", BUILD, "A build was queued, started or finished."),
    EventType("build.status", "build", BUILD, "This build's status changed."),
    EventType(
        "build.step", "build",
        {"build": int, "step": int, "position": int, "name": str, "status": str, "error": str,
         "attempt": int},
        "A step of this build was queued, started, awaits approval or finished.",
    ),
    EventType("build.token", "build", {"build": int, "step": int, "content": str},
              "Text a running step's model produced."),
)  # fmt: skip
