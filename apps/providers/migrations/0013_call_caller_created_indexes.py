"""A caller's calls in a time range (the Calls page's caller filter) are read from indexes of
``(user_id, created_at)`` and ``(api_key_id, created_at)``: with the index of each column alone,
PostgreSQL read every call of the caller (all 90 days) to keep a day's. They replace those
indexes (as many indexes to write per call, and lookups by the column alone use them as well)
and are made before those are dropped."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_budgets"),
        ("providers", "0012_call_variant_figures_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="llmcall",
            index=models.Index(fields=["user", "created_at"], name="llmcall_user_created"),
        ),
        migrations.AddIndex(
            model_name="llmcall",
            index=models.Index(fields=["api_key", "created_at"], name="llmcall_api_key_created"),
        ),
        migrations.AlterField(
            model_name="llmcall",
            name="api_key",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="llm_calls",
                to="accounts.apikey",
            ),
        ),
        migrations.AlterField(
            model_name="llmcall",
            name="user",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="llm_calls",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
    ]
