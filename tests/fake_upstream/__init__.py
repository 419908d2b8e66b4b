"""Fake OpenAI-compatible upstream LLM server for tests and benchmarks.

It runs in its own process (raw asyncio + httptools, uvloop when available) so the gateway
under test talks to it over real sockets, and tests can prove things only the wire shows:
status mapping, streaming, timeouts and that a cancelled request really closed the upstream
connection.

Usage from a test (sync, stdlib-only control calls)::

    from tests.fake_upstream import FakeUpstream, free_port

    with FakeUpstream(name="a") as fake:           # spawns `python -m tests.fake_upstream`
        client = openai.OpenAI(base_url=fake.base_url, api_key="k")
        fake.configure(latency_ms=20, tokens=5)    # default for every following request
        fake.enqueue({"status": 429, "retry_after": 1}, {"drop": True})  # one-shots, in order
        ...
        fake.wait_for(lambda s: s["client_disconnects"] == 1)
        fake.reset()

Command line: ``python -m tests.fake_upstream --host 127.0.0.1 --port 0 --name a
[--tokens 8] [--models fake-model,fake-model-2] [--no-uvloop]`` prints ``LISTENING <port>``
once, then serves until SIGTERM/SIGINT and exits with code 0.

Try the whole platform offline: ``python -m tests.fake_upstream --port 9000 --name demo`` and
point a provider at ``http://127.0.0.1:9000/v1``; ``--help`` lists endpoints and behavior keys.

Text and tokens: generated text is ``"Hello from <name>"`` padded with filler words up to
``tokens`` words (default 8); a token is a whitespace-separated word everywhere (prompt texts,
inputs, outputs; a token-array input counts its items). Streams are SSE over chunked encoding.

LLM endpoints (POST; a body that is not a JSON object of the endpoint's shape gets a 400):

- ``/v1/chat/completions``: ``model``, ``messages``; text capped by
  ``max_tokens``/``max_completion_tokens`` (finish_reason ``"length"``); ``n`` choices (1-128,
  same text, each with its index; usage counts them all); ``response_format`` ``json_object`` or
  ``json_schema`` makes the text the JSON object ``{"answer":"<words>"}``, still with one token
  per word, valid even when capped. A tool call replaces the text (``content: null``,
  ``message.tool_calls=[{"id": "call_...", "type": "function", "function": {"name",
  "arguments"}}]``, finish_reason ``"tool_calls"``) when the ``tool_call`` behavior asks for
  one, or when the request has ``tools`` and ``tool_choice`` is ``"required"`` (the first
  function) or names a function; its arguments then fill the function's JSON schema (first enum
  value, "lorem", 1, 1.5, true, [], nested objects). Streams send a role chunk per choice, one
  chunk per word, a finish chunk, a usage chunk (``choices: []``) when
  ``stream_options.include_usage`` is true, then ``data: [DONE]``; a tool call streams as
  OpenAI does: a first delta with ``index``, ``id``, ``type``, ``name`` and empty ``arguments``,
  then argument pieces (each ends after a ``,`` or ``:``; they are its tokens).
- ``/v1/completions`` (legacy): ``prompt`` a string, strings or tokens; ``max_tokens``; ``n``
  choices per prompt. ``{"id": "cmpl-...", "object": "text_completion", "choices": [{"text",
  "index", "logprobs": null, "finish_reason"}], "usage"}``; streams send one chunk per word and
  choice, a final chunk per choice with the finish_reason, the usage chunk when asked, ``[DONE]``.
- ``/v1/embeddings``: ``input`` a non-empty string, strings, tokens (ints) or token lists;
  ``dimensions`` (default 8); ``encoding_format`` ``"float"`` (default) or ``"base64"``
  (little-endian float32, which the SDK asks for and decodes by default). Vectors are unit
  float32 vectors derived from a hash of the input: equal inputs, equal vectors.
  ``usage = {"prompt_tokens", "total_tokens"}``.
- ``/v1/responses`` (Responses API): ``input`` a string or a list of items (messages with
  ``content`` a string or ``[{"type": "input_text", "text"}]``; ``function_call_output`` items
  count their ``output``); ``instructions`` (counted as input); ``max_output_tokens`` (beyond it:
  ``status: "incomplete"``, ``incomplete_details.reason: "max_output_tokens"``, and a stream ends
  with ``response.incomplete``); ``tools``/``tool_choice`` (Responses shape, same rules as chat:
  the output is then one ``function_call`` item); ``text.format`` JSON as chat's
  ``response_format``; ``store`` (default true). The answer has the full field set of the SDK's
  ``Response`` (``output_text`` works); usage is ``{"input_tokens", "input_tokens_details":
  {"cached_tokens": 0, "cache_write_tokens": 0}, "output_tokens", "output_tokens_details":
  {"reasoning_tokens": 0}, "total_tokens"}``. Streams send ``event: <type>`` + ``data: {"type",
  "sequence_number", ...}`` events: ``response.created``, ``response.in_progress``,
  ``response.output_item.added``, ``response.content_part.added``, one
  ``response.output_text.delta`` per word, ``response.output_text.done``,
  ``response.content_part.done``, ``response.output_item.done``, ``response.completed`` (the
  full response with usage); a function call sends ``response.function_call_arguments.delta``
  per piece and ``.done`` instead of the content events. No ``[DONE]``.

Other endpoints (never consume one-shots, not counted in ``requests``/``completed``; they honour
the default behavior's ``latency_ms``, ``status``/``error_*``/``retry_after``, ``malformed``,
``hang``, ``drop`` and ``unsupported``):

- ``GET /v1/models`` and ``GET /v1/models/<id>`` (the ``models`` behavior or ``--models``).
- ``GET /v1/responses/<id>`` (the stored response) and ``DELETE /v1/responses/<id>``
  (``{"id", "object": "response.deleted", "deleted": true}``); an unknown id gets 404
  ``Response with id '<id>' not found.`` with ``code: null``. A response is stored when its
  answer starts being sent, unless ``store`` is false; the last 1000 are kept.
- Any other path: 404 ``{"error": {"message": "Invalid URL (<METHOD> <path>)", ...,
  "code": "unknown_url"}}``, as OpenAI answers.
- ``POST /_control/behavior`` (body: behavior, replaces the default; ``GET`` reads it),
  ``POST /_control/enqueue`` (``{"behaviors": [...]}``: one-shots for the next LLM requests, on
  any LLM endpoint, in order; a one-shot replaces the default for its request, it is not
  merged), ``POST /_control/reset`` (also forgets stored responses), ``GET /_control/stats``.

Behavior keys (all optional; unknown keys or wrong types are rejected with 400). Every LLM
endpoint honours them all; ``tokens``, ``content`` and ``tool_call`` shape generated output, so
embeddings ignore them, and the stream keys only matter to streams:

- ``latency_ms``: delay before the response headers.
- ``chunk_delay_ms``: delay between stream events.
- ``tokens``: number of generated words.
- ``content``: exact generated text; its whitespace-separated words are the tokens (it wins
  over JSON formats, so a test can send invalid JSON).
- ``status``: answer with this status and ``{"error": {"message", "type", "param", "code"}}``.
- ``error_message``: message for that error body.
- ``error_code``: ``error.code`` of that body (e.g. ``model_not_found``,
  ``context_length_exceeded``); by default a code that fits the status, or null.
- ``retry_after``: value of a ``Retry-After`` header on error responses (e.g. with 429).
- ``malformed``: 200 with invalid JSON; in a stream, the second event is invalid JSON.
- ``body``: the exact body of a 200 answer not streamed (a string, sent as it is; it wins over
  ``malformed``), e.g. ``'{"choices": []}'``.
- ``hang``: read the request and never answer until the client goes away.
- ``drop``: close the socket without answering (after ``latency_ms`` if set).
- ``drop_after_chunks``: abort the connection after N stream events.
- ``omit_usage``: no ``usage`` anywhere (Responses: ``usage: null``); wins over ``usage``.
- ``usage``: a JSON object whose entries replace or extend every usage object sent (bodies,
  the stream's usage chunk, ``response.completed``), with any JSON values, unchecked, e.g.
  ``{"prompt_tokens": -5}``, ``{"completion_tokens": "12"}``, ``{"prompt_tokens": 1e20}``,
  ``{"prompt_tokens": 3.7}``; integers beyond 64 bits are sent exactly. Totals are not
  recomputed.
- ``tool_call``: ``{"name": str, "arguments": str}`` (arguments default ``"{}"``): chat and
  Responses answer with this tool call, whatever tools the request offers.
- ``unsupported``: paths (e.g. ``["/v1/responses"]``, which also covers
  ``/v1/responses/<id>``) answered at once with 404 ``code: "unknown_url"``, like a server
  lacking them (e.g. Ollama without the Responses API).
- ``models``: ids listed by ``/v1/models``.

Stats (``GET /_control/stats``): ``name``; ``requests`` (POSTs to the LLM endpoints: chat,
completions, embeddings, responses; rejected and unsupported ones included); ``by_path``
(requests per path, control endpoints excluded); ``completed`` (LLM responses fully sent,
errors included); ``streams_started``; ``streams_completed``; ``client_disconnects`` (client
closed the connection while a response was pending or streaming; closes made by the fake itself,
e.g. ``drop``, are not counted); ``open_connections`` (excluding the one asking for stats);
``queued``; ``stored_responses``; ``behavior``; ``last_request`` (last LLM request: ``path``,
lower-cased ``headers``, parsed JSON ``body``).

``FakeUpstream.request(method, path, payload)`` sends any request and returns the reply as sent
(``status``, ``headers``, ``body``, ``.json()``, ``.events()``), for what SDKs hide or reject.
"""

from .client import FakeUpstream, RawReply, free_port

__all__ = ["FakeUpstream", "RawReply", "free_port"]
