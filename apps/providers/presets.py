"""Provider presets: the base URL and conventions of each kind of OpenAI-compatible server.

Adding a kind is one entry in ``PRESETS`` (and one in ``ProviderKind``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from .models import ModelMode, ProviderKind


@dataclass(frozen=True)
class Preset:
    label: str
    base_url: str
    needs_api_key: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    # Whether streams report usage when asked with ``stream_options.include_usage``.
    stream_usage: bool = True
    # Whether the server has the Responses API (else Responses requests are translated).
    responses_api: bool = False


PRESETS: dict[str, Preset] = {
    ProviderKind.OPENAI: Preset("OpenAI", "https://api.openai.com/v1", responses_api=True),
    ProviderKind.XAI: Preset("xAI Grok", "https://api.x.ai/v1", responses_api=True),
    ProviderKind.OLLAMA: Preset("Ollama", "http://localhost:11434/v1", needs_api_key=False),
    ProviderKind.VLLM: Preset("vLLM", "http://localhost:8000/v1", needs_api_key=False),
    ProviderKind.TGI: Preset(
        "Text Generation Inference",
        "http://localhost:8080/v1",
        needs_api_key=False,
        stream_usage=False,
    ),
    ProviderKind.LMSTUDIO: Preset("LM Studio", "http://localhost:1234/v1", needs_api_key=False),
    ProviderKind.OPENROUTER: Preset(
        "OpenRouter", "https://openrouter.ai/api/v1", headers={"X-Title": "AI Orchestra"}
    ),
    ProviderKind.OPENAI_COMPATIBLE: Preset("OpenAI-compatible server", "", needs_api_key=False),
}


def preset_for(kind: str) -> Preset:
    return PRESETS[kind]


_NOT_ROUTED = ("whisper", "tts", "dall-e", "gpt-image", "moderation", "transcribe", "realtime")
_COMPLETION_ONLY = ("gpt-3.5-turbo-instruct", "davinci-002", "babbage-002")


def mode_for_model_name(name: str) -> str:
    """The mode a model's id suggests, for models imported by *Sync models* (editable after)."""
    lowered = name.lower()
    if "embed" in lowered:
        return ModelMode.EMBEDDING
    if lowered.startswith(_COMPLETION_ONLY):
        return ModelMode.COMPLETION
    if any(marker in lowered for marker in _NOT_ROUTED):
        return ModelMode.OTHER
    return ModelMode.CHAT


def normalized_base_url(kind: str, base_url: str) -> str:
    """The base URL as requests use it: no trailing slash, and a known kind's server root
    completed with the path its API is served under (``http://host:11434`` → ``…/v1``)."""
    url = urlsplit(base_url)
    api_path = urlsplit(preset_for(kind).base_url).path
    if url.path in ("", "/") and api_path:
        return urlunsplit(url._replace(path=api_path))
    return base_url.rstrip("/")
