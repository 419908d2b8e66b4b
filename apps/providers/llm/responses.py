"""The Responses API on providers that only have chat completions: requests translated to chat
completions, and their answers (whole or streamed) back to Responses.

What the translation carries: ``input`` (a string, or items: messages whose content is text or
``input_text``/``input_image`` parts, ``function_call`` and ``function_call_output`` items),
``instructions`` (a system message first), ``max_output_tokens``, ``temperature``, ``top_p``,
function ``tools``, ``tool_choice``, ``parallel_tool_calls``, ``text.format`` (``json_object``,
``json_schema``), ``user``; ``metadata`` is echoed. Not carried, and refused with a 400 saying
so: ``previous_response_id`` and ``conversation`` (the provider keeps no state), built-in tools
(web search, file search, …), ``background``. A translated response is not stored: ``GET
/v1/responses/{id}`` answers 404 for it.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from .validation import InvalidRequestError

NOT_CARRIED = ("previous_response_id", "conversation", "background", "prompt")
COPIED = ("temperature", "top_p", "user", "parallel_tool_calls", "stream")


def _refuse(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(f"{message} (this provider has no Responses API of its own)", param)


# --- requests -----------------------------------------------------------------------------------


def _content(value: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise _refuse("content must be a string or a list of parts", where)
    parts: list[dict[str, Any]] = []
    for part in value:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": part.get("text") or ""})
        elif kind == "input_image" and part.get("image_url"):
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
        else:
            raise _refuse(f"content parts of type {kind!r} are not carried", where)
    return parts


def _messages(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise InvalidRequestError("'input' must be a string or a non-empty list of items.", "input")
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        where = f"input[{index}]"
        kind = item.get("type", "message") if isinstance(item, dict) else None
        if kind == "message" and isinstance(item, dict):
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise InvalidRequestError(f"{where} needs a valid 'role'.", where)
            messages.append({"role": role, "content": _content(item.get("content"), where)})
        elif kind == "function_call" and isinstance(item, dict):
            call = {
                "id": item.get("call_id") or item.get("id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments") or ""},
            }
            last = messages[-1] if messages else None
            if last and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output" and isinstance(item, dict):
            output = item.get("output")
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": item.get("call_id"),
                    "content": output if isinstance(output, str) else orjson.dumps(output).decode(),
                }
            )
        else:
            raise _refuse(f"input items of type {kind!r} are not carried", where)
    return messages


def _tools(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise InvalidRequestError("'tools' must be a list.", "tools")
    tools = []
    for index, tool in enumerate(value):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise _refuse(f"built-in tools ({kind!r}) are not carried", f"tools[{index}]")
        function = {
            k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool
        }
        tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(value: Any) -> Any:
    if isinstance(value, dict) and value.get("type") == "function":
        return {"type": "function", "function": {"name": value.get("name")}}
    if value in ("auto", "none", "required"):
        return value
    raise _refuse("this tool_choice is not carried", "tool_choice")


def _response_format(text: Any) -> dict[str, Any] | None:
    text_format = text.get("format") if isinstance(text, dict) else None
    if not isinstance(text_format, dict) or text_format.get("type") in (None, "text"):
        return None
    if text_format["type"] == "json_object":
        return {"type": "json_object"}
    if text_format["type"] == "json_schema":
        schema = {
            k: text_format[k]
            for k in ("name", "schema", "strict", "description")
            if k in text_format
        }
        return {"type": "json_schema", "json_schema": schema}
    raise _refuse(f"text.format {text_format['type']!r} is not carried", "text.format")


def chat_request(payload: dict[str, Any]) -> dict[str, Any]:
    """The chat completions body for a Responses request."""
    for name in NOT_CARRIED:
        if payload.get(name):
            raise _refuse(f"'{name}' is not carried", name)
    messages = _messages(payload.get("input"))
    instructions = payload.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.insert(0, {"role": "system", "content": instructions})
    body: dict[str, Any] = {"messages": messages}
    body.update({name: payload[name] for name in COPIED if payload.get(name) is not None})
    if payload.get("max_output_tokens") is not None:
        body["max_tokens"] = payload["max_output_tokens"]
    if payload.get("tools"):
        body["tools"] = _tools(payload["tools"])
    if payload.get("tool_choice") is not None:
        body["tool_choice"] = _tool_choice(payload["tool_choice"])
    response_format = _response_format(payload.get("text"))
    if response_format:
        body["response_format"] = response_format
    if body.get("stream"):
        body["stream_options"] = {"include_usage": True}
    return body


# --- answers ------------------------------------------------------------------------------------


def _usage(usage: Any) -> dict[str, Any] | None:
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.get("total_tokens") or prompt + completion,
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    content = [_text_part(text)] if status != "in_progress" else []
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _call_item(item_id: str, call: dict[str, Any], status: str) -> dict[str, Any]:
    function = call.get("function") or {}
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call.get("id"),
        "name": function.get("name"),
        "arguments": function.get("arguments") or "",
    }


class Translated:
    """The Response object of one translated call, built as its answer comes in."""

    def __init__(self, payload: dict[str, Any], response_id: str, model: str) -> None:
        self.payload = payload
        self.id = response_id
        self.model = model
        self.created_at = int(time.time())

    def response(
        self,
        status: str,
        output: list[dict[str, Any]],
        usage: Any = None,
        finish_reason: str = "",
    ) -> dict[str, Any]:
        payload = self.payload
        if status != "in_progress":
            status = "incomplete" if finish_reason == "length" else "completed"
        text = payload.get("text")
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"}
            if status == "incomplete"
            else None,
            "instructions": payload.get("instructions"),
            "max_output_tokens": payload.get("max_output_tokens"),
            "model": self.model,
            "output": output,
            "parallel_tool_calls": payload.get("parallel_tool_calls", True),
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "store": False,
            "temperature": payload.get("temperature", 1.0),
            "text": text if isinstance(text, dict) else {"format": {"type": "text"}},
            "tool_choice": payload.get("tool_choice", "auto"),
            "tools": payload.get("tools") or [],
            "top_p": payload.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": _usage(usage) if status != "in_progress" else None,
            "user": payload.get("user"),
            "metadata": payload.get("metadata") or {},
        }

    def from_chat(self, data: dict[str, Any]) -> dict[str, Any]:
        """A whole chat completion as a Response."""
        choice = data["choices"][0]
        message = choice.get("message") or {}
        output = []
        if message.get("content"):
            output.append(_message_item(f"msg_{self.id[5:]}", message["content"], "completed"))
        for index, call in enumerate(message.get("tool_calls") or ()):
            output.append(_call_item(f"fc_{self.id[5:]}_{index}", call, "completed"))
        return self.response("completed", output, data.get("usage"), choice.get("finish_reason"))


class TranslatedStream:
    """Chat completion chunks in, Responses stream events out (with ``sequence_number``)."""

    def __init__(self, translated: Translated) -> None:
        self.translated = translated
        self.sequence = 0
        self.text = ""
        self.message_open = False
        self.calls: dict[int, dict[str, Any]] = {}  # tool call index -> the call so far
        self.items: list[dict[str, Any]] = []  # finished output items
        self.usage: Any = None
        self.finish_reason = ""
        self.item_ids: dict[str, int] = {}

    def _event(self, kind: str, **fields: Any) -> bytes:
        body = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(body) + b"\n\n"

    def start(self) -> bytes:
        started = self.translated.response("in_progress", [])
        return self._event("response.created", response=started) + self._event(
            "response.in_progress", response=started
        )

    def _message_id(self) -> str:
        return f"msg_{self.translated.id[5:]}"

    def feed(self, data: dict[str, Any]) -> bytes:
        out = b""
        self.usage = data.get("usage") or self.usage
        for choice in data.get("choices") or ():
            delta = choice.get("delta") or {}
            piece = delta.get("content")
            if piece:
                out += self._text(piece)
            for call in delta.get("tool_calls") or ():
                out += self._call(call)
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        return out

    def _text(self, piece: str) -> bytes:
        out = b""
        place = {"item_id": self._message_id(), "output_index": 0, "content_index": 0}
        if not self.message_open:
            self.message_open = True
            item = _message_item(self._message_id(), "", "in_progress")
            out += self._event("response.output_item.added", output_index=0, item=item)
            part = _text_part("")
            out += self._event("response.content_part.added", **place, part=part)
        self.text += piece
        return out + self._event("response.output_text.delta", **place, delta=piece, logprobs=[])

    def _call(self, delta: dict[str, Any]) -> bytes:
        index = delta.get("index", 0)
        function = delta.get("function") or {}
        call = self.calls.get(index)
        out = b""
        output_index = (1 if self.message_open else 0) + index
        if call is None:
            call = self.calls[index] = {
                "id": delta.get("id"), "type": "function",
                "function": {"name": function.get("name"), "arguments": ""},
            }  # fmt: skip
            item = _call_item(self._call_id(index), call, "in_progress")
            out += self._event("response.output_item.added", output_index=output_index, item=item)
        arguments = function.get("arguments") or ""
        if arguments:
            call["function"]["arguments"] += arguments
            out += self._event(
                "response.function_call_arguments.delta",
                item_id=self._call_id(index),
                output_index=output_index,
                delta=arguments,
            )
        return out

    def _call_id(self, index: int) -> str:
        return f"fc_{self.translated.id[5:]}_{index}"

    def finish(self) -> bytes:
        """The closing events, once the chat stream has ended."""
        out = b""
        output: list[dict[str, Any]] = []
        if self.message_open:
            place = {"item_id": self._message_id(), "output_index": 0, "content_index": 0}
            out += self._event("response.output_text.done", **place, text=self.text, logprobs=[])
            part = _text_part(self.text)
            out += self._event("response.content_part.done", **place, part=part)
            item = _message_item(self._message_id(), self.text, "completed")
            out += self._event("response.output_item.done", output_index=0, item=item)
            output.append(item)
        for index, call in sorted(self.calls.items()):
            output_index = len(output)
            item = _call_item(self._call_id(index), call, "completed")
            out += self._event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=output_index,
                name=item["name"],
                arguments=item["arguments"],
            )
            out += self._event("response.output_item.done", output_index=output_index, item=item)
            output.append(item)
        final = self.translated.response("completed", output, self.usage, self.finish_reason)
        return out + self._event(f"response.{final['status']}", response=final)
