"""Call records are listed by ``(created_at, id)``: one index on both replaces the index of
``created_at`` alone (as many indexes to write per call), so a page, the page after a row and
the ids at a deep offset are read from it. Made before the old one is dropped."""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_budgets"),
        ("providers", "0010_call_ids_v7_request_id_where_set"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="llmcall",
            index=models.Index(fields=["created_at", "id"], name="llmcall_created_id"),
        ),
        migrations.AlterField(
            model_name="llmcall",
            name="created_at",
            field=models.DateTimeField(),
        ),
    ]
