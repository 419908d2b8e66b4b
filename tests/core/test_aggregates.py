"""``without_jit``: PostgreSQL compiles no query inside it, and the setting ends with it."""

from __future__ import annotations

import pytest
from django.db import connection

from apps.core.aggregates import without_jit

postgresql_only = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="JIT compilation is PostgreSQL's"
)


def jit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        return cursor.fetchone()[0]


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_queries_inside_are_not_compiled_and_the_setting_ends_with_the_block():
    with connection.cursor() as cursor:
        cursor.execute("SET jit = on")
    with without_jit(connection.alias):
        assert jit() == "off"
    assert jit() == "on"
