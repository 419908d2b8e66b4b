"""The plug-in points every app fills from its own ``AppConfig.ready()``.

The core never imports the apps built on it: each app registers what it contributes here (the
way NetBox apps fill ``netbox/registry.py``), and the parts that use a contribution read it from
here. Registries refuse a second, different entry under a name already taken (as Sentry's do), so
two apps cannot silently overwrite each other; registering the very same entry again is a no-op,
which keeps ``ready()`` safe to run twice.

Registries of this module (the event bus and health checks have modules of their own,
``events.py`` and ``health.py``):

- ``operator_models``: the models the ``operator`` role may add, change and delete;
- ``navigation``: the dashboard's sidebar entries (links to admin pages and other URLs);
- ``pages``: the dashboard's own pages, custom views served inside the admin site at
  ``/admin/<slug>/`` with its header and sidebar (and listed in the sidebar themselves);
- ``request_hooks``: what the LLM core runs on each request before routing it;
- ``socket_actions``: message types of the ``/ws/`` protocol that start work in an app (a
  build, an agent task) the way its REST API does;
- ``features``: optional features an app offers (A/B tests, human approvals), each reported by
  ``/api/v1/feature-status`` as available or not (switched off in the app's runtime settings);
- ``alert_rules``: thresholds the periodic health run judges (a provider's error rate, a
  circuit open too long; a budget's soft limit once an app offers budgets), each raising and
  resolving its own alerts;
- ``call_record_hooks``: what runs inside the transaction that stores LLM call records (or
  changes them: the sweep), told when the calls it wrote were made (analytics marks those
  hours for its rollups);
- ``call_counts``: how many calls there are per hour or day, from figures an app keeps (the
  analytics rollups), so ``/api/v1/llm-calls`` finds a deep offset's hour without walking the
  calls before it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class AlreadyRegisteredError(ValueError):
    pass


class Registry(Generic[T]):
    """Named entries in registration order."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        existing = self._entries.get(name)
        if existing is not None and existing != entry:
            raise AlreadyRegisteredError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def get(self, name: str) -> T | None:
        return self._entries.get(name)

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def values(self) -> list[T]:
        return list(self._entries.values())


# --- models operators may edit -----------------------------------------------------------------

operator_models: Registry[str] = Registry("operator-editable model")


def register_operator_models(app_label: str, *model_names: str) -> None:
    """Give the ``operator`` role add/change/delete on these models of ``app_label``."""
    for model_name in model_names:
        label = f"{app_label}.{model_name.lower()}"
        operator_models.register(label, label)


# --- dashboard pages and navigation ------------------------------------------------------------


@dataclass(frozen=True)
class NavItem:
    """A sidebar entry. ``permission`` is a Django permission (``app_label.codename``) the user
    needs to see it; ``badge`` returns a short text (a count) shown beside it, or None."""

    title: str
    url_name: str
    section: str
    icon: str = ""
    permission: str = ""
    order: int = 100
    badge: Callable[[Any], str | None] | None = None


navigation: Registry[NavItem] = Registry("navigation entry")


def register_navigation(*items: NavItem) -> None:
    for item in items:
        navigation.register(item.url_name, item)


PAGE_SLUG = re.compile(r"^[a-z][a-z0-9-]{0,48}$")


@dataclass(frozen=True)
class Page:
    """A dashboard page: a view served inside the admin site at ``/admin/<slug>/`` (URL name
    ``admin:page-<slug>``), shown with the admin's header and sidebar and, unless
    ``in_sidebar`` is off, listed in the sidebar under ``section``.

    ``view`` is a dotted path to a Django view (``"apps.widgets.pages.board"``, or a class-based
    view's ``as_view()`` result), called with the request and the page's URL keyword arguments;
    it returns a ``TemplateResponse`` of a template extending ``admin/base_site.html`` and the
    site adds the admin's context (sidebar, title, theme) to it. ``permission`` (``app.codename``)
    is needed to see the page, in the sidebar and at its URL (403 otherwise); writes the page
    offers check their own permission too. ``badge`` is as ``NavItem.badge``. ``urls`` are
    extra paths under the page (``"<int:pk>/"``), each served by the same view, named
    ``admin:page-<slug>-<n>`` in order."""

    slug: str
    title: str
    view: str | Callable[..., Any]
    section: str
    icon: str = ""
    permission: str = ""
    order: int = 100
    badge: Callable[[Any], str | None] | None = None
    in_sidebar: bool = True
    urls: tuple[str, ...] = ()

    @property
    def url_name(self) -> str:
        return f"admin:page-{self.slug}"


pages: Registry[Page] = Registry("dashboard page")


def register_pages(*entries: Page) -> None:
    for page in entries:
        if not PAGE_SLUG.match(page.slug):
            raise ValueError(f"page slug {page.slug!r}: lower-case letters, digits and hyphens")
        pages.register(page.slug, page)


# --- request hooks of the LLM core -------------------------------------------------------------

# An async callable taking the core's ``LlmRequest`` (typed loosely: the core of the platform
# knows no app), run before routing; it may change the request (a variant's overrides, a build
# step's ids) or raise the core's ``ProviderError`` to refuse it (a budget spent).
RequestHook = Callable[[Any], Awaitable[None]]

request_hooks: Registry[RequestHook] = Registry("request hook")


def register_request_hook(name: str, hook: RequestHook) -> None:
    request_hooks.register(name, hook)


# --- actions of the /ws/ protocol ---------------------------------------------------------------


@dataclass(frozen=True)
class SocketReply:
    """What an action answers: the reply's fields, and the channel its client is subscribed to
    (before the reply is sent) to follow the work it started."""

    data: dict[str, Any]
    subscribe: str | None = None


@dataclass(frozen=True)
class SocketAction:
    """A ``/ws/`` message type ``type`` handled by ``handler(message, user) -> SocketReply``, a
    synchronous function (run in a thread, with database access) that raises Django's
    ``ValidationError`` for bad input and ``PermissionDenied`` for a refusal. The caller needs
    ``permission``; the reply has type ``reply_type``."""

    type: str
    handler: Callable[[dict[str, Any], Any], SocketReply]
    reply_type: str
    permission: str = "accounts.operate_platform"


socket_actions: Registry[SocketAction] = Registry("socket action")


def register_socket_action(action: SocketAction) -> None:
    socket_actions.register(action.type, action)


# --- figures of one object ---------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectFigure:
    """A figure an app computes for one object of another app's model, shown on that object's
    admin change page (the analytics app's spend this month on an API key's page): ``model`` is
    ``app_label.model_name``, ``value(obj)`` the text shown under ``title``. The model's app
    shows what is registered without depending on the app that computes it."""

    model: str
    title: str
    value: Callable[[Any], str]


object_figures: Registry[ObjectFigure] = Registry("object figure")


def register_object_figure(name: str, figure: ObjectFigure) -> None:
    object_figures.register(name, figure)


def object_figures_for(model: str) -> list[ObjectFigure]:
    return [figure for figure in object_figures.values() if figure.model == model]


# --- optional features -------------------------------------------------------------------------


@dataclass(frozen=True)
class Feature:
    """An optional feature: ``enabled()`` (a database read, no side effects) says whether it is
    switched on now."""

    name: str
    description: str
    enabled: Callable[[], bool]


features: Registry[Feature] = Registry("feature")


def register_feature(feature: Feature) -> None:
    features.register(feature.name, feature)


# --- alert rules -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Firing:
    """One thing a rule finds wrong now. ``key`` tells it apart from the rule's other findings
    (a provider's name): while it keeps firing, its one alert stays open; once the rule no
    longer returns it, the alert is resolved. ``severity``: ``info``, ``warning`` or
    ``critical``."""

    key: str
    title: str
    detail: str = ""
    severity: str = "warning"
    data: dict[str, Any] | None = None


@dataclass(frozen=True)
class AlertRule:
    """A threshold ``kind`` (``provider_error_rate``, ``budget_soft_limit``) judged after each
    periodic health run, on a worker or beat (never on the request path): ``evaluate()``
    returns what fires now. A rule that raises fires nothing and resolves nothing that run."""

    kind: str
    description: str
    evaluate: Callable[[], list[Firing]]


alert_rules: Registry[AlertRule] = Registry("alert rule")


def register_alert_rule(*rules: AlertRule) -> None:
    for rule in rules:
        alert_rules.register(rule.kind, rule)


# --- hooks of the call records' writes ----------------------------------------------------------

# A callable taking the ``created_at`` of each call record a transaction writes or changes
# (datetimes, or the ISO strings a shipped batch carries), run inside that transaction: what it
# writes commits or rolls back with the records.
CallRecordHook = Callable[[list[Any]], None]

call_record_hooks: Registry[CallRecordHook] = Registry("call record hook")


def register_call_record_hook(name: str, hook: CallRecordHook) -> None:
    call_record_hooks.register(name, hook)


# --- counts of the call records ----------------------------------------------------------------

# ``counts(dims, start, end, period)``: how many calls that are not running (the rollups leave
# running streams out) match ``dims`` (call columns to exact values: ``provider_name``,
# ``user_id``, ``stream``...) in each ``period`` (``"hour"`` or ``"day"``, UTC) of the whole
# closed hours ``[start, end)``, all of whose records still exist: the period's start to its
# calls, a period with none may be left out. Exact, or None when the source cannot count these
# ``dims`` (a filter it does not keep) without reading the records themselves.
CallCounts = Callable[[dict[str, Any], datetime, datetime, str], dict[datetime, int] | None]

call_counts: Registry[CallCounts] = Registry("call counts")


def register_call_counts(name: str, counts: CallCounts) -> None:
    call_counts.register(name, counts)
