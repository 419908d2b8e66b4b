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

Endpoints:

- ``POST /v1/chat/completions``: OpenAI wire format, streaming (SSE over chunked encoding) or
  not. Content is ``"Hello from <name>"`` padded with filler words up to ``tokens`` words
  (default 8), capped by ``max_tokens``/``max_completion_tokens`` (finish_reason ``"length"``).
  ``completion_tokens`` is the word count, ``prompt_tokens`` the words in all message texts.
  Streams send a role chunk, one chunk per word, a finish chunk, a usage chunk when
  ``stream_options.include_usage`` is true, then ``data: [DONE]``. A body that is not a JSON
  object with ``model`` and ``messages`` gets a 400.
- ``GET /v1/models`` and ``GET /v1/models/<id>``.
- ``POST /_control/behavior`` (body: behavior, replaces the default; ``GET`` reads it),
  ``POST /_control/enqueue`` (``{"behaviors": [...]}``: one-shots for the next chat requests;
  a one-shot replaces the default for its request, it is not merged), ``POST /_control/reset``,
  ``GET /_control/stats``.

Behavior keys (all optional; unknown keys or wrong types are rejected with 400):

- ``latency_ms``: delay before the response headers.
- ``chunk_delay_ms``: delay between stream events.
- ``tokens``: number of content words.
- ``content``: exact content string; its whitespace-separated words are the tokens.
- ``status``: answer with this status and ``{"error": {"message", "type", "param", "code"}}``.
- ``error_message``: message for that error body.
- ``retry_after``: value of a ``Retry-After`` header on error responses (e.g. with 429).
- ``malformed``: 200 with invalid JSON; in a stream, one ``data:`` line of invalid JSON.
- ``hang``: read the request and never answer until the client goes away.
- ``drop``: close the socket without answering (after ``latency_ms`` if set).
- ``drop_after_chunks``: abort the connection after N stream events.
- ``omit_usage``: no ``usage`` anywhere.
- ``models``: ids listed by ``/v1/models``.

``/v1/models`` honours the default behavior (``latency_ms``, ``status``, ``malformed``,
``hang``, ``drop``, ``models``) but never consumes queued one-shots.

Stats (``GET /_control/stats``): ``name``; ``requests`` (chat requests received);
``by_path`` (requests per path, control endpoints excluded); ``completed`` (chat responses fully
sent, errors included); ``streams_started``; ``streams_completed``; ``client_disconnects``
(client closed the connection while a response was pending or streaming; closes made by the fake
itself, e.g. ``drop``, are not counted); ``open_connections`` (excluding the one asking for
stats); ``queued``; ``behavior``; ``last_request`` (last chat request: ``path``, lower-cased
``headers``, parsed JSON ``body``).
"""

from .client import FakeUpstream, free_port

__all__ = ["FakeUpstream", "free_port"]
