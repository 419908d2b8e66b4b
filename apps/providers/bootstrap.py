"""Providers and routing settings from the environment: applied at start-up by
``manage.py bootstrap_providers``, each value once, so a restart changes nothing a person has
edited since."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.core.environment import AppliedSettings

from .models import Provider, ProviderKind, RoutingStrategy
from .presets import mode_for_model_name
from .services import model_create, provider_create, provider_update, routing_settings_update


class BootstrapError(ValueError):
    """An environment variable holds a value the bootstrap cannot use; names the variable."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


@dataclass(frozen=True)
class EnvProvider:
    """A provider the environment may define, under each variable name it is known by (e.g.
    ``XAI_API_KEY`` or ``GROK_API_KEY``)."""

    name: str
    kind: str
    defined_by: tuple[str, ...]  # the key (or, for Ollama, the URL): set means "create it"
    base_url: tuple[str, ...] = ()
    enabled: tuple[str, ...] = ()
    default_model: tuple[str, ...] = ()


ENV_PROVIDERS = (
    EnvProvider(
        "openai", ProviderKind.OPENAI, ("OPENAI_API_KEY",), ("OPENAI_BASE_URL",),
        ("OPENAI_ENABLED",), ("OPENAI_DEFAULT_MODEL",),
    ),
    EnvProvider(
        "xai", ProviderKind.XAI, ("XAI_API_KEY", "GROK_API_KEY"),
        ("XAI_BASE_URL", "GROK_BASE_URL"), ("XAI_ENABLED", "GROK_ENABLED"),
        ("XAI_DEFAULT_MODEL", "GROK_DEFAULT_MODEL"),
    ),
    EnvProvider(
        "ollama", ProviderKind.OLLAMA, ("OLLAMA_HOST", "OLLAMA_URL"), (), ("OLLAMA_ENABLED",),
        ("OLLAMA_DEFAULT_MODEL",),
    ),
)  # fmt: skip
ENV_ROUTING = ("LLM_DEFAULT_PROVIDER", "LLM_LOAD_BALANCING", "LLM_ENABLE_FALLBACK")
ENV_VARIABLES = (
    tuple(
        name
        for provider in ENV_PROVIDERS
        for names in (
            provider.defined_by,
            provider.base_url,
            provider.enabled,
            provider.default_model,
        )
        for name in names
    )
    + ENV_ROUTING
)
PROVIDER_ALIASES = {"grok": "xai"}
OLLAMA_PORT = 11434
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _env_value(environ: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, str] | None:
    """The first of ``names`` set to something other than blanks: (name, value)."""
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return name, value
    return None


def _env_bool(variable: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise BootstrapError(variable, f"{value!r} is not a boolean (true/false, 1/0, yes/no, on/off)")


def _env_strategy(variable: str, value: str) -> str:
    strategy = value.lower().replace("_", "-")
    if strategy not in RoutingStrategy.values:
        raise BootstrapError(
            variable, f"{value!r} is not a strategy; use one of {', '.join(RoutingStrategy.values)}"
        )
    return strategy


def _ollama_base_url(value: str) -> str:
    """Ollama's own convention (``host``, ``host:port`` or a URL) as a URL: no scheme means
    ``http://`` and, without a port, 11434 (the provider adds ``/v1`` to a server root)."""
    if "://" in value:
        return value
    host = value.rstrip("/")
    return f"http://{host}" if ":" in host.rpartition("]")[2] else f"http://{host}:{OLLAMA_PORT}"


@dataclass
class BootstrapReport:
    """What the bootstrap did, one line per setting, fit to print (never a key)."""

    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.lines.append(line)


def _validation_error(error: ValidationError, variables: dict[str, str]) -> BootstrapError:
    """A model's validation error, told as the variable that supplied the field (never with
    the value: it may be a key)."""
    problems = error.message_dict if hasattr(error, "error_dict") else {"": error.messages}
    field_name, messages = next(iter(problems.items()))
    return BootstrapError(variables.get(field_name, "environment"), " ".join(messages))


def _provider_wanted(
    spec: EnvProvider, defined: tuple[str, str], environ: Mapping[str, str]
) -> tuple[str, dict[str, tuple[str, Any]], dict[str, str]]:
    """The key, the fields the environment sets (field -> (the value as given, the field's
    value)) and which variable gave each field (for error messages)."""
    variables: dict[str, str] = {}
    wanted: dict[str, tuple[str, Any]] = {}
    if spec.kind == ProviderKind.OLLAMA:
        api_key = ""
        variables["base_url"] = defined[0]
        wanted["base_url"] = (defined[1], _ollama_base_url(defined[1]))
    else:
        api_key = defined[1]
        variables["api_key"] = defined[0]
        if found := _env_value(environ, spec.base_url):
            variables["base_url"] = found[0]
            wanted["base_url"] = (found[1], found[1].rstrip("/"))
    if found := _env_value(environ, spec.enabled):
        variables["enabled"] = found[0]
        wanted["enabled"] = (found[1], _env_bool(*found))
    return api_key, wanted, variables


def _provider_from_env(
    spec: EnvProvider, environ: Mapping[str, str], applied: AppliedSettings, report: BootstrapReport
) -> None:
    defined = _env_value(environ, spec.defined_by)
    if defined is None:
        return
    api_key, wanted, variables = _provider_wanted(spec, defined, environ)
    setting = f"provider:{spec.name}"
    provider = Provider.objects.filter(name=spec.name).first()
    if provider is None and not applied.changed(setting, defined[1]):
        report.add(f"provider {spec.name}: deleted since it was created here; left deleted")
        return
    try:
        if provider is None:
            fields = {name: value for name, (_, value) in wanted.items()}
            provider = provider_create(name=spec.name, kind=spec.kind, api_key=api_key, **fields)
            done = ["created"]
        else:
            fields = {
                name: value
                for name, (text, value) in wanted.items()
                if applied.changed(f"{setting}:{name}", text)
            }
            key_changed = bool(api_key) and applied.changed(setting, api_key)
            # The key belongs to where it is sent: a new URL from the environment takes the
            # environment's key along (provider_update would drop the stored one).
            if key_changed or (api_key and "base_url" in fields):
                provider = provider_update(provider=provider, api_key=api_key, **fields)
            elif fields:
                provider = provider_update(provider=provider, **fields)
            done = [f"{name} set" for name in fields] + (["api key set"] if key_changed else [])
    except ValidationError as error:
        raise _validation_error(error, variables) from error
    applied.remember(setting, defined[1])
    for name in ("base_url", "enabled"):
        if name in wanted:
            applied.remember(f"{setting}:{name}", wanted[name][0])
        else:
            applied.forget(f"{setting}:{name}")
    model = _env_value(environ, spec.default_model)
    if model is None:
        applied.forget(f"{setting}:model")
    elif applied.changed(f"{setting}:model", model[1]):
        if provider.models.filter(name=model[1]).exists():
            done.append(f"model {model[1]} present")
        else:
            try:
                model_create(
                    provider=provider,
                    name=model[1],
                    display_name=model[1],
                    mode=mode_for_model_name(model[1]),
                )
            except ValidationError as error:
                variables = dict.fromkeys(("name", "display_name"), model[0])
                raise _validation_error(error, variables) from error
            done.append(f"model {model[1]} created")
        applied.remember(f"{setting}:model", model[1])
    report.add(f"provider {spec.name}: {', '.join(done) or 'unchanged'}")


def _routing_from_env(
    environ: Mapping[str, str], applied: AppliedSettings, report: BootstrapReport
) -> None:
    wanted: dict[str, tuple[str, Any]] = {}  # setting -> (its value as text, the field's value)
    if found := _env_value(environ, ("LLM_LOAD_BALANCING",)):
        wanted["strategy"] = (found[1], _env_strategy(*found))
    if found := _env_value(environ, ("LLM_ENABLE_FALLBACK",)):
        wanted["fallback_enabled"] = (found[1], _env_bool(*found))
    if found := _env_value(environ, ("LLM_DEFAULT_PROVIDER",)):
        wanted["default_provider"] = (found[1], None)
        if applied.changed("routing:default_provider", found[1]):
            name = PROVIDER_ALIASES.get(found[1].lower(), found[1])
            provider = Provider.objects.filter(name=name).first()
            if provider is None:
                known = ", ".join(Provider.objects.values_list("name", flat=True)) or "none yet"
                raise BootstrapError(
                    found[0],
                    f"no provider is named {name!r} (known: {known}); set its key (for example "
                    "OPENAI_API_KEY) to create it",
                )
            wanted["default_provider"] = (found[1], provider)
    for name in ("strategy", "fallback_enabled", "default_provider"):
        if name not in wanted:
            applied.forget(f"routing:{name}")
    if not wanted:
        return
    fields = {
        name: value
        for name, (text, value) in wanted.items()
        if applied.changed(f"routing:{name}", text)
    }
    if fields:
        routing_settings_update(**fields)
    for name, (text, _) in wanted.items():
        applied.remember(f"routing:{name}", text)
    described = ", ".join(
        f"{name} = {getattr(value, 'name', value)}" for name, value in fields.items()
    )
    report.add(f"routing settings: {described or 'unchanged'}")


def _env_formats_check(environ: Mapping[str, str]) -> None:
    """Every value that has a format, checked before anything is written."""
    for names in (*(spec.enabled for spec in ENV_PROVIDERS), ("LLM_ENABLE_FALLBACK",)):
        if found := _env_value(environ, names):
            _env_bool(*found)
    if found := _env_value(environ, ("LLM_LOAD_BALANCING",)):
        _env_strategy(*found)


@transaction.atomic
def providers_bootstrap_from_env(*, environ: Mapping[str, str]) -> BootstrapReport:
    """Create or update the providers and routing settings the environment names, once.

    Providers ``openai`` (``OPENAI_API_KEY``), ``xai`` (``XAI_API_KEY`` or ``GROK_API_KEY``) and
    ``ollama`` (``OLLAMA_HOST`` or ``OLLAMA_URL``), with their ``*_BASE_URL``, ``*_ENABLED`` and
    ``*_DEFAULT_MODEL``; then ``LLM_LOAD_BALANCING``, ``LLM_ENABLE_FALLBACK`` and
    ``LLM_DEFAULT_PROVIDER``. Each value is applied when it differs from the value applied last
    time (``apps.core.environment``): running it again changes nothing, and an operator's edit
    stands until the environment's value changes. A provider an operator deleted is created
    again only when its key (Ollama: its URL) changes. Removing a variable changes nothing.
    A bad value raises ``BootstrapError`` naming the variable, and nothing is applied (one
    transaction).
    """
    _env_formats_check(environ)
    applied = AppliedSettings()
    report = BootstrapReport()
    for spec in ENV_PROVIDERS:
        _provider_from_env(spec, environ, applied, report)
    _routing_from_env(environ, applied, report)
    return report
