from __future__ import annotations

from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def price(value: Decimal | None) -> str:
    """A price per million tokens as stored, without trailing zeros: $1.5, $6, $0.075."""
    return "—" if value is None else f"${Decimal(value).normalize():f}"
