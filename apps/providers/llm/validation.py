"""What callers may send the LLM core, checked once for every entry point.

The OpenAI-compatible API, the query API, the streaming API and the WebSocket protocol all turn
their JSON into an ``LlmRequest`` with ``llm_request_from``, so the same field accepts the same
values everywhere: no entry point coerces ``"10"`` into 10 or refuses what another accepts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from ..models import Endpoint, RoutingStrategy
from .calls import Caller, LlmRequest

ROLES = frozenset({"system", "user", "assistant", "tool", "developer", "function"})
MAX_NAME_LENGTH = 200
MAX_MESSAGES = 10_000
MAX_TOKENS = 2**31 - 1
MAX_STOP_SEQUENCES = 4
SEED_RANGE = (-(2**63), 2**63 - 1)
# The sampling parameters' closed ranges: what ``check_params`` accepts and the OpenAPI schema
# says (``apps/gateway/schema.py``).
PARAM_RANGES: dict[str, tuple[int, int]] = {
    "temperature": (0, 2),
    "top_p": (0, 1),
    "presence_penalty": (-2, 2),
    "frequency_penalty": (-2, 2),
}
# Attribution: the end user a caller acts for, and the caller's own tags (``key=value``).
MAX_END_USER_LENGTH = 256
MAX_TAGS = 10
MAX_TAG_KEY_LENGTH = 32
MAX_TAG_VALUE_LENGTH = 64
TAG_KEY = re.compile(rf"[A-Za-z0-9_.-]{{1,{MAX_TAG_KEY_LENGTH}}}\Z")
TAG_VALUE = re.compile(rf"[A-Za-z0-9_.:/@+-]{{1,{MAX_TAG_VALUE_LENGTH}}}\Z")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
USER_HEADER = "X-Orchestra-User"
TAGS_HEADER = "X-Orchestra-Tags"
# Sampling parameters our own JSON APIs pass on to the provider (``/v1`` passes its whole body).
LLM_PARAMS = (
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed",
    "presence_penalty", "frequency_penalty",
)  # fmt: skip
# Every field ``check_params`` reads: a body holding none of them is not walked at all.
CHECKED_PARAMS = frozenset(
    {*PARAM_RANGES, "max_tokens", "max_completion_tokens", "n", "seed", "stop"}
)
LLM_PARAM_NAMES = frozenset(LLM_PARAMS)
CONTENT_TYPES = (str, list, type(None))
NUMBER_TYPES = (int, float)


class InvalidRequestError(ValueError):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param = message, param


def _is_number(value: Any) -> bool:
    return isinstance(value, NUMBER_TYPES) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def messages_from(
    value: Any, param: str = "messages", *, from_json: bool = False
) -> list[dict[str, Any]]:
    """Chat messages, checked. ``from_json``: ``value`` is fresh from ``orjson.loads``, whose
    strings are always valid Unicode, so it is not encoded again to find out."""
    if not isinstance(value, list) or not value:
        raise InvalidRequestError(f"'{param}' must be a non-empty array.", param)
    if len(value) > MAX_MESSAGES:
        raise InvalidRequestError(f"'{param}' holds more than {MAX_MESSAGES} messages.", param)
    for index, message in enumerate(value):
        where = f"{param}[{index}]"
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise InvalidRequestError(f"{where} needs a valid 'role'.", where)
        content = message.get("content")
        if not isinstance(content, CONTENT_TYPES):
            raise InvalidRequestError(
                f"{where}.content must be a string or an array.", f"{where}.content"
            )
        if isinstance(content, list) and not all(isinstance(part, dict) for part in content):
            raise InvalidRequestError(
                f"{where}.content must be an array of objects.", f"{where}.content"
            )
    if not from_json:
        _check_encodable(value, param)
    return value


def _check_encodable(value: Any, param: str) -> None:
    """Text a provider cannot be sent (a lone surrogate is not UTF-8) is the caller's mistake."""
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        raise InvalidRequestError(
            f"'{param}' holds text that is not valid Unicode (a lone surrogate?).", param
        ) from exc


def prompt_messages(value: Any, param: str = "prompt") -> list[dict[str, Any]]:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError(f"'{param}' must be a non-empty string.", param)
    messages = [{"role": "user", "content": value}]
    _check_encodable(messages, param)
    return messages


def name_from(payload: Mapping[str, Any], param: str, *, from_json: bool = False) -> str:
    value = payload.get(param)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_NAME_LENGTH:
        raise InvalidRequestError(
            f"'{param}' must be a string of at most {MAX_NAME_LENGTH} characters.", param
        )
    if not from_json:
        _check_encodable(value, param)
    return value


def user_from(payload: Mapping[str, Any]) -> str:
    """OpenAI's ``user``: the end user the caller acts for."""
    return end_user_from(payload.get("user"), "user")


def end_user_from(value: Any, param: str = "user") -> str:
    """An end user's id: a string of at most ``MAX_END_USER_LENGTH`` characters without
    control characters (OpenAI documents no bound of its own; the record's column has this
    one)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidRequestError(f"'{param}' must be a string.", param)
    if len(value) > MAX_END_USER_LENGTH:
        raise InvalidRequestError(
            f"'{param}' must have at most {MAX_END_USER_LENGTH} characters.", param
        )
    if CONTROL_CHARACTERS.search(value):
        raise InvalidRequestError(f"'{param}' must not hold control characters.", param)
    _check_encodable(value, param)
    return value


def header_text(value: str, param: str) -> str:
    """A header's value as servers hand it over (its bytes as latin-1), read as UTF-8."""
    try:
        return value.encode("latin-1").decode()
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise InvalidRequestError(f"'{param}' must be UTF-8.", param) from None


def tags_from_header(value: str) -> dict[str, str]:
    """``X-Orchestra-Tags: team=growth,feature=search`` as a dict (spaces around items are
    allowed; an empty header is no tags)."""
    pairs = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        key, equals, tag = item.partition("=")
        if not equals:
            raise InvalidRequestError(
                f"'{TAGS_HEADER}' holds '{item[:80]}': tags read key=value, separated by commas.",
                TAGS_HEADER,
            )
        pairs.append((key.strip(), tag.strip()))
    return _tags_checked(pairs, TAGS_HEADER)


def tags_from(value: Any, param: str = "tags") -> dict[str, str]:
    """A body's ``tags``: an object of strings (``{"team": "growth"}``)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(tag, str) for tag in value.values()):
        raise InvalidRequestError(f"'{param}' must be an object of strings.", param)
    return _tags_checked(list(value.items()), param)


def _tags_checked(pairs: list[tuple[str, str]], param: str) -> dict[str, str]:
    if len(pairs) > MAX_TAGS:
        raise InvalidRequestError(f"'{param}' holds more than {MAX_TAGS} tags.", param)
    tags: dict[str, str] = {}
    for key, tag in pairs:
        if not TAG_KEY.match(key):
            raise InvalidRequestError(
                f"'{param}': the key '{key[:80]}' must be 1 to {MAX_TAG_KEY_LENGTH} letters, "
                "digits, '_', '.' or '-'.",
                param,
            )
        if not TAG_VALUE.match(tag):
            raise InvalidRequestError(
                f"'{param}': the value of '{key}' must be 1 to {MAX_TAG_VALUE_LENGTH} letters, "
                "digits or any of _.:/@+-",
                param,
            )
        if key in tags:
            raise InvalidRequestError(f"'{param}' names the tag '{key}' twice.", param)
        tags[key] = tag
    return tags


def strategy_from(value: Any, param: str = "strategy") -> str:
    if value in (None, ""):
        return ""
    if value not in RoutingStrategy.values:
        choices = ", ".join(RoutingStrategy.values)
        raise InvalidRequestError(f"Unknown strategy {value!r}; use one of {choices}.", param)
    return value


def _check_range(payload: Mapping[str, Any], param: str, low: float, high: float) -> None:
    value = payload.get(param)
    if value is not None and not (_is_number(value) and low <= value <= high):
        raise InvalidRequestError(f"'{param}' must be a number from {low:g} to {high:g}.", param)


def check_params(payload: Mapping[str, Any]) -> None:
    """The sampling parameters, where present; others pass through to the provider."""
    if CHECKED_PARAMS.isdisjoint(payload):  # most bodies: one pass over the body's keys
        return
    for param, (low, high) in PARAM_RANGES.items():
        _check_range(payload, param, low, high)
    for param in ("max_tokens", "max_completion_tokens", "n"):
        value = payload.get(param)
        if value is not None and not (_is_int(value) and 1 <= value <= MAX_TOKENS):
            raise InvalidRequestError(
                f"'{param}' must be an integer from 1 to {MAX_TOKENS}.", param
            )
    seed = payload.get("seed")
    if seed is not None and not (_is_int(seed) and SEED_RANGE[0] <= seed <= SEED_RANGE[1]):
        raise InvalidRequestError("'seed' must be a 64-bit integer.", "seed")
    stop = payload.get("stop")
    if stop is not None and not (
        isinstance(stop, str)
        or (
            isinstance(stop, list)
            and len(stop) <= MAX_STOP_SEQUENCES
            and all(isinstance(s, str) for s in stop)
        )
    ):
        raise InvalidRequestError(
            f"'stop' must be a string or an array of at most {MAX_STOP_SEQUENCES} strings.", "stop"
        )
    if stop is not None:
        _check_encodable(stop, "stop")


def _is_tokens(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_int(t) for t in value)


def text_input(value: Any, param: str) -> str:
    """A completion prompt or an embedding input: a string, a list of strings, a list of
    tokens or a list of token lists; as one text (for estimates and hooks)."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, list) and value:
        if all(isinstance(item, str) and item for item in value):
            return "\n".join(value)
        if _is_tokens(value) or all(_is_tokens(item) for item in value):
            return ""  # tokens: nothing to read, usage comes from the provider
    raise InvalidRequestError(
        f"'{param}' must be a non-empty string, a list of them, or tokens.", param
    )


def _response_input(value: Any) -> str:
    """The text of a Responses ``input``: a string or a list of items."""
    if isinstance(value, str) and value:
        return value
    if not isinstance(value, list) or not value or not all(isinstance(i, dict) for i in value):
        raise InvalidRequestError("'input' must be a string or a non-empty list of items.", "input")
    texts: list[Any] = []
    for item in value:
        content = item.get("content", item.get("output"))
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [p.get("text") for p in content if isinstance(p, dict) and p.get("text")]
    return "\n".join(str(text) for text in texts)


def _endpoint_messages(
    endpoint: str, payload: Mapping[str, Any], from_json: bool = False
) -> list[dict[str, Any]]:
    """What a non-chat request says, as messages: for estimates, hooks and the record."""
    if endpoint == Endpoint.COMPLETIONS:
        text = text_input(payload.get("prompt"), "prompt")
    elif endpoint == Endpoint.EMBEDDINGS:
        text = text_input(payload.get("input"), "input")
        dimensions = payload.get("dimensions")
        if dimensions is not None and not (_is_int(dimensions) and 1 <= dimensions <= 65536):
            raise InvalidRequestError("'dimensions' must be an integer from 1.", "dimensions")
        if payload.get("encoding_format", "float") not in ("float", "base64"):
            message = "'encoding_format' must be 'float' or 'base64'."
            raise InvalidRequestError(message, "encoding_format")
    else:
        text = _response_input(payload.get("input"))
        instructions = payload.get("instructions")
        if instructions is not None and not isinstance(instructions, str):
            raise InvalidRequestError("'instructions' must be a string.", "instructions")
        limit = payload.get("max_output_tokens")
        if limit is not None and not (_is_int(limit) and 1 <= limit <= MAX_TOKENS):
            raise InvalidRequestError(
                f"'max_output_tokens' must be an integer from 1 to {MAX_TOKENS}.",
                "max_output_tokens",
            )
        text = "\n".join(filter(None, [instructions, text]))
    messages = [{"role": "user", "content": text}]
    if not from_json:
        _check_encodable(messages, "input")
    return messages


def llm_request_from(
    payload: Any,
    *,
    caller: Caller,
    entry_point: str,
    request_id: str = "",
    endpoint: str = Endpoint.CHAT,
    allow_prompt: bool = False,
    require_model: bool = False,
    provider: str | None = None,
    strategy: str | None = None,
    experiment: str | None = None,
    user: str | None = None,
    tags: str | None = None,
    body_tags: bool = True,
    from_json: bool = False,
) -> LlmRequest:
    """The one builder of an ``LlmRequest`` from a caller's JSON object.

    ``provider``, ``strategy`` and ``experiment`` given here (from headers, say) win over the
    payload's; the OpenAI-compatible API passes them so, since OpenAI's body has no room for
    them. ``experiment`` names the experiment the call joins, ``user`` (OpenAI's) the end user.
    ``user`` and ``tags`` given here are the ``X-Orchestra-User`` and ``X-Orchestra-Tags``
    headers' values: each is read only where the payload has no ``user`` (or ``tags``; read
    from the payload only with ``body_tags``, not on ``/v1``, whose body is OpenAI's).
    ``allow_prompt`` takes a ``prompt`` string instead of ``messages`` (chat). Other endpoints
    than chat read their own fields (``prompt``, ``input``) into the request's messages.
    ``from_json``: ``payload`` is fresh from ``orjson.loads`` (``/v1``), whose strings are
    always valid Unicode: they are not encoded again to find out.
    """
    if not isinstance(payload, Mapping):
        raise InvalidRequestError("The body must be a JSON object.")
    if endpoint != Endpoint.CHAT:
        messages = _endpoint_messages(endpoint, payload, from_json)
    elif allow_prompt and "messages" not in payload:
        messages = prompt_messages(payload.get("prompt"))
    else:
        messages = messages_from(payload.get("messages"), from_json=from_json)
    check_params(payload)
    model = name_from(payload, "model", from_json=from_json)
    if require_model and not model:
        raise InvalidRequestError("'model' is required.", "model")
    end_user = user_from(payload) if "user" in payload else ""
    if not end_user and user:
        end_user = end_user_from(header_text(user, USER_HEADER), USER_HEADER)
    body_tag_value = payload.get("tags") if body_tags else None
    if body_tag_value is not None:
        request_tags = tags_from(body_tag_value)
    else:
        request_tags = tags_from_header(tags) if tags else {}
    if strategy is None:
        strategy = payload.get("strategy")
    return LlmRequest(
        messages=messages,
        model=model,
        provider=name_from(payload, "provider") if provider is None else provider,
        strategy="" if strategy is None or strategy == "" else strategy_from(strategy),
        experiment=name_from(payload, "experiment") if experiment is None else experiment,
        user=end_user,
        tags=request_tags,
        params={}
        if LLM_PARAM_NAMES.isdisjoint(payload)
        else {name: payload[name] for name in LLM_PARAMS if payload.get(name) is not None},
        caller=caller,
        entry_point=entry_point,
        endpoint=endpoint,
        request_id=request_id,
    )
