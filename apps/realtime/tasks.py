from typing import Any

from celery import shared_task

from apps.core.runtime import run_sync

from .llm_relay import relay_to_connection


@shared_task(name="realtime.llm_ask", ignore_result=True, bind=True)
def llm_ask(
    self, reply_channel: str, ask: dict[str, Any], caller: dict[str, Any], request_id: str
) -> None:
    """Answer one WebSocket query or stream, relaying to the connection's channel."""
    run_sync(
        relay_to_connection(
            reply_channel, task_id=self.request.id, ask=ask, caller=caller, request_id=request_id
        )
    )
