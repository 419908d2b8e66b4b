"""An experiment's figures are read from one covering index of its calls (PostgreSQL: an
index-only scan), since a variant's calls are spread over the whole table. It replaces the
index of ``experiment_variant_id`` alone (as many indexes to write per call) and is made before
that one is dropped."""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_budgets"),
        ("providers", "0011_call_created_id_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="llmcall",
            index=models.Index(
                condition=models.Q(("experiment_variant_id__isnull", False)),
                fields=["experiment_variant_id", "created_at"],
                include=("status", "latency_ms", "input_tokens", "output_tokens", "cost"),
                name="llmcall_variant_figures",
            ),
        ),
        migrations.RemoveIndex(
            model_name="llmcall",
            name="llmcall_experiment_variant",
        ),
    ]
