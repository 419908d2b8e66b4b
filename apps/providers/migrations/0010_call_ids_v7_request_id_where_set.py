"""Call ids become UUIDv7 (a default only: existing rows keep theirs); the request_id index
holds only the calls that have one."""

import apps.core.ids
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_api_key_limits"),
        ("providers", "0009_model_price_source"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="llmcall",
            name="llmcall_request_id",
        ),
        migrations.AlterField(
            model_name="llmcall",
            name="id",
            field=models.UUIDField(
                default=apps.core.ids.uuid7, editable=False, primary_key=True, serialize=False
            ),
        ),
        migrations.AddIndex(
            model_name="llmcall",
            index=models.Index(
                condition=models.Q(("request_id", ""), _negated=True),
                fields=["request_id"],
                name="llmcall_request_id",
            ),
        ),
    ]
