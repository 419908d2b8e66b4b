from apps.providers.llm import LlmRequest, ProviderError, errors

REFUSED_MODEL = "widget-refused"
# When the calls were made whose records the call record hook was told of, newest last.
RECORDED_AT: list = []
# What the call counts were asked for: (dims, period), newest last.
COUNTS_ASKED: list = []


async def refuse_widget_model(request: LlmRequest) -> None:
    """The plug-in's request hook: it refuses calls for ``REFUSED_MODEL`` and lets every other
    call through unchanged, so the rest of the suite never notices it."""
    if request.model == REFUSED_MODEL:
        raise ProviderError(errors.BAD_REQUEST, "widgets refuse this model")


def note_recorded(created: list) -> None:
    """The plug-in's call record hook: it keeps when the stored calls were made."""
    RECORDED_AT.extend(created)


def count_no_calls(dims: dict, start, end, period: str) -> None:
    """The plug-in's call counts: it notes what it was asked and counts nothing (None: it
    keeps no counts), so deep pages seek as they would without it."""
    COUNTS_ASKED.append((dims, period))
