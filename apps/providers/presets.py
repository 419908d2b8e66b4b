"""Provider presets: the base URL and conventions of each kind of OpenAI-compatible server.

Adding a kind is one entry in ``PRESETS`` (and one in ``ProviderKind``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .models import ProviderKind


@dataclass(frozen=True)
class Preset:
    label: str
    base_url: str
    needs_api_key: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    # Whether streams report usage when asked with ``stream_options.include_usage``.
    stream_usage: bool = True


PRESETS: dict[str, Preset] = {
    ProviderKind.OPENAI: Preset("OpenAI", "https://api.openai.com/v1"),
    ProviderKind.XAI: Preset("xAI Grok", "https://api.x.ai/v1"),
    ProviderKind.OLLAMA: Preset("Ollama", "http://localhost:11434/v1", needs_api_key=False),
    ProviderKind.VLLM: Preset("vLLM", "http://localhost:8000/v1", needs_api_key=False),
    ProviderKind.TGI: Preset(
        "Text Generation Inference",
        "http://localhost:8080/v1",
        needs_api_key=False,
        stream_usage=False,
    ),  # fmt: skip
    ProviderKind.LMSTUDIO: Preset("LM Studio", "http://localhost:1234/v1", needs_api_key=False),
    ProviderKind.OPENROUTER: Preset(
        "OpenRouter", "https://openrouter.ai/api/v1", headers={"X-Title": "AI Orchestra"}
    ),
    ProviderKind.OPENAI_COMPATIBLE: Preset("OpenAI-compatible server", "", needs_api_key=False),
}


def preset_for(kind: str) -> Preset:
    return PRESETS[kind]
