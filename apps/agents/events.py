"""The live events of agents: their status, their tasks' changes and the tokens a task streams."""

from apps.core.events import Channel, EventType

CHANNELS = (
    Channel("agents", "Agents' status and tasks"),
    Channel("agent_task", "A task's tokens as they stream", per_object=True),
)

EVENT_TYPES = (
    EventType(
        "agent.status", "agents", {"agent": int, "name": str, "status": str},
        "An agent's status changed or was recomputed: idle, busy or error.",
    ),
    EventType(
        "agent.task", "agents", {"agent": int, "task": int, "status": str, "error": str},
        "An agent task was queued, started, retried or finished.",
    ),
    EventType(
        "agent_task.token", "agent_task", {"task": int, "content": str},
        "A piece of a running task's answer, as the provider streams it.",
    ),
)  # fmt: skip
