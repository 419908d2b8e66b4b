"""The Calls page's table rows: the HTML unfold renders, with what does not vary by row worked
out once per page instead of once per cell.

unfold's ``items_for_result`` rebuilds every column's header (label, sort links) for each row,
reverses the change URL and adds the preserved filters for each row, and its results template
then prints each cell through the template engine: with 100 rows, most of the page's time.
``call_rows`` renders the same cells (a test compares them with unfold's) from columns made
once, and the page's template (``providers/llmcall_results.html``) prints each row at once.
Only what the Calls page uses is supported: columns named by strings, no ``list_editable``,
no row actions, no ``list_sections`` and no ``ordering_field``.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.contrib.admin.utils import lookup_field, quote
from django.core.exceptions import ObjectDoesNotExist
from django.db import models
from django.urls import reverse
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext
from unfold.templatetags.unfold_list import (  # type: ignore[import-untyped]
    LINK_CLASSES,
    ROW_CLASSES,
    result_headers,
)
from unfold.utils import display_for_field, display_for_value  # type: ignore[import-untyped]
from unfold.views import ChangeList  # type: ignore[import-untyped]

PK_PLACEHOLDER = "pk-placeholder"  # reversed once, replaced by each row's primary key


@dataclass(frozen=True)
class Column:
    """A column of the list: its cell's tags, and how its value is found and shown."""

    name: str
    classes: str
    label: str  # the header's text, escaped (``data-label``)
    link: bool
    tag: str

    def cell(self, content: Any, *, nowrap: bool) -> str:
        classes = f"{self.classes} nowrap" if nowrap else self.classes
        return (
            f'<{self.tag} class="{classes}" data-label="{self.label}">'
            f"{conditional_escape(content)}</{self.tag}>"
        )


def _columns(cl: ChangeList, headers: list[dict[str, Any]]) -> list[Column]:
    columns = []
    linked = False
    for index, name in enumerate(cl.list_display):
        link = _links(cl, name, first=not linked)
        label = headers[index]["text"] if link or index else gettext("Select record")
        columns.append(
            Column(
                name=name,
                classes=" ".join([f"field-{name}", *ROW_CLASSES]),
                label=conditional_escape(label),
                link=link,
                tag="th" if link and not linked else "td",
            )
        )
        linked = linked or link
    return columns


def _links(cl: ChangeList, name: str, *, first: bool) -> bool:
    """Whether the column links to the call, as unfold decides it."""
    if cl.list_display_links is None:
        return False
    if first and not cl.list_display_links:
        return True
    return name in cl.list_display_links


def _shown(cl: ChangeList, name: str, row: models.Model, empty: str) -> tuple[Any, bool]:
    """A cell's content as unfold's ``items_for_result`` shows it, and whether it must not
    wrap (dates and foreign keys)."""
    try:
        field, attr, value = lookup_field(name, row, cl.model_admin)
    except ObjectDoesNotExist:
        return empty, False
    empty = getattr(attr, "empty_value_display", empty)
    if field is None or field.auto_created:
        shown = display_for_value(value, empty, getattr(attr, "boolean", False))
        return shown, isinstance(value, datetime.date | datetime.time)
    if isinstance(field.remote_field, models.ManyToOneRel):
        related = getattr(row, field.name)
        shown = empty if related is None else related
    else:
        shown = display_for_field(value, field, empty)
    return shown, isinstance(field, models.DateField | models.TimeField | models.ForeignKey)


def _change_url(cl: ChangeList) -> str:
    """The change page's URL with ``PK_PLACEHOLDER`` for the primary key, and the filters
    to go back to (what ``url_for_result`` and ``add_preserved_filters`` make for each row)."""
    opts = cl.opts
    url = reverse(
        f"admin:{opts.app_label}_{opts.model_name}_change",
        args=(PK_PLACEHOLDER,),
        current_app=cl.model_admin.admin_site.name,
    )
    return add_preserved_filters({"preserved_filters": cl.preserved_filters, "opts": opts}, url)


def calls_table(cl: ChangeList) -> dict[str, Any]:
    """What ``providers/llmcall_results.html`` shows: the headers (unfold's, made once) and
    the rows."""
    headers = list(result_headers(cl))
    return {
        "result_headers": headers,
        "num_sorted_fields": sum(1 for h in headers if h["sortable"] and h["sorted"]),
        "call_rows": call_rows(cl, headers),
    }


def call_rows(cl: ChangeList, headers: list[dict[str, Any]]) -> list[SafeString]:
    """Each listed call's cells, as one string of HTML per row."""
    columns = _columns(cl, headers)
    change_url = _change_url(cl)
    opener = cl.to_field or cl.lookup_opts.pk.attname
    empty = cl.model_admin.get_empty_value_display()
    rows = []
    for row in cl.result_list:
        cells = []
        for column in columns:
            shown, nowrap = _shown(cl, column.name, row, empty)
            if column.link:
                url = change_url.replace(PK_PLACEHOLDER, str(quote(row.pk)))
                popup = (
                    format_html(' data-popup-opener="{}"', row.serializable_value(opener))
                    if cl.is_popup
                    else ""
                )
                shown = format_html(
                    '<a href="{}" class="{}" {}>{}</a>', url, " ".join(LINK_CLASSES), popup, shown
                )
            cells.append(column.cell(shown, nowrap=nowrap))
        rows.append(mark_safe("".join(cells)))
    return rows
