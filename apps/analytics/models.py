"""Hourly rollups of the LLM call records, and the hours waiting to be rolled up.

A rollup hour is recomputed whole from the raw records (``services.rollup_hour``), never added
to: an hour is rolled once it has closed, and again whenever a record of it is stored or
changed later (a late batch, a stream's final record, the sweep). The hours to roll are
``PendingHour`` rows, written by the transaction that stores the records (a call record hook),
so no record can be stored without its hour being marked.

On top of the hourly rows: a narrow hourly rollup for latency percentiles
(``ModelHourlyRollup``, hour × provider × model), one of experiment variants' calls
(``VariantHourlyRollup``, hour × variant × status), and daily rollups of each kind
(``DailyRollup``, ``EndUserDailyRollup``, ``TagDailyRollup``, ``ModelDailyRollup``,
``VariantDailyRollup``) summed
from a closed day's hourly rows. A day is rebuilt whenever one of its hours is rolled: the roll
marks it in ``PendingDay`` (in its transaction), and the day is rebuilt once it has closed and
none of its hours is pending; readers take a marked day from the hourly rows.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models

from .histograms import empty


class PendingHour(models.Model):
    """An hour whose raw records changed since it was last rolled up. ``changes`` counts the
    writes that marked it (each one takes the row's lock, which a roll holds while it reads)."""

    hour = models.DateTimeField(primary_key=True)
    changes = models.BigIntegerField(default=1)
    marked_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["hour"]

    def __str__(self) -> str:
        return self.hour.isoformat()


class PendingDay(models.Model):
    """A day (midnight UTC) one of whose hours was rolled since the day's rollups were built."""

    day = models.DateTimeField(primary_key=True)
    marked_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["day"]

    def __str__(self) -> str:
        return self.day.date().isoformat()


class Figures(models.Model):
    """What every rollup adds up for the calls of its hour and key. Running streams are left
    out until their final record; ``errors`` counts calls whose status is ``error``."""

    hour = models.DateTimeField()
    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=20, decimal_places=8, default=Decimal(0))
    latency_sum_ms = models.FloatField(default=0)

    class Meta:
        abstract = True


class HourlyRollup(Figures):
    """One hour × provider × model × API key × user × workspace × entry point × endpoint ×
    service × status. End users and tags, whose values are unbounded, have rollups of their
    own (``EndUserHourlyRollup``, ``TagHourlyRollup``) instead of multiplying these rows."""

    provider_name = models.CharField(max_length=64, blank=True)
    model_name = models.CharField(max_length=200, blank=True)
    api_key_id = models.BigIntegerField(null=True, blank=True)
    user_id = models.BigIntegerField(null=True, blank=True)
    workspace_id = models.BigIntegerField(null=True, blank=True)
    entry_point = models.CharField(max_length=16)
    endpoint = models.CharField(max_length=16)
    service = models.CharField(max_length=16)
    status = models.CharField(max_length=16)
    ttft_count = models.BigIntegerField(default=0)
    ttft_sum_ms = models.FloatField(default=0)
    # Counts per bucket of ``histograms`` (a JSON list of BUCKETS integers).
    latency_histogram = models.JSONField(default=empty)
    ttft_histogram = models.JSONField(default=empty)

    class Meta:
        indexes = [
            models.Index(fields=["hour"], name="rollup_hour"),
            models.Index(fields=["provider_name", "hour"], name="rollup_provider_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.provider_name}/{self.model_name} {self.status}"


class EndUserHourlyRollup(Figures):
    """One hour × end user (calls that named one)."""

    end_user = models.CharField(max_length=256)

    class Meta:
        indexes = [models.Index(fields=["hour"], name="rollup_end_user_hour")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.end_user}"


class TagHourlyRollup(Figures):
    """One hour × tag (key and value): a call with two tags counts in two rows."""

    key = models.CharField(max_length=256)
    value = models.CharField(max_length=256)

    class Meta:
        indexes = [models.Index(fields=["hour"], name="rollup_tag_hour")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.key}={self.value}"


class Daily(models.Model):
    """What every daily rollup adds up: the same figures, summed from the day's hourly rows."""

    day = models.DateTimeField(help_text="The day's first moment (midnight UTC).")
    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=20, decimal_places=8, default=Decimal(0))
    latency_sum_ms = models.FloatField(default=0)

    class Meta:
        abstract = True


class DailyRollup(Daily):
    """One day × the dimensions of ``HourlyRollup``, its histograms included."""

    provider_name = models.CharField(max_length=64, blank=True)
    model_name = models.CharField(max_length=200, blank=True)
    api_key_id = models.BigIntegerField(null=True, blank=True)
    user_id = models.BigIntegerField(null=True, blank=True)
    workspace_id = models.BigIntegerField(null=True, blank=True)
    entry_point = models.CharField(max_length=16)
    endpoint = models.CharField(max_length=16)
    service = models.CharField(max_length=16)
    status = models.CharField(max_length=16)
    ttft_count = models.BigIntegerField(default=0)
    ttft_sum_ms = models.FloatField(default=0)
    latency_histogram = models.JSONField(default=empty)
    ttft_histogram = models.JSONField(default=empty)

    class Meta:
        indexes = [models.Index(fields=["day"], name="rollup_daily_day")]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.provider_name}/{self.model_name} {self.status}"


class EndUserDailyRollup(Daily):
    """One day × end user."""

    end_user = models.CharField(max_length=256)

    class Meta:
        indexes = [models.Index(fields=["day"], name="rollup_end_user_day")]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.end_user}"


class TagDailyRollup(Daily):
    """One day × tag (key and value)."""

    key = models.CharField(max_length=256)
    value = models.CharField(max_length=256)

    class Meta:
        indexes = [models.Index(fields=["day"], name="rollup_tag_day")]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.key}={self.value}"


class ModelHourlyRollup(Figures):
    """One hour × provider × model: the latency and TTFT histograms ``performance`` reads when
    it is filtered by nothing but provider and model (a few rows an hour, where the wide
    rollup has hundreds)."""

    provider_name = models.CharField(max_length=64, blank=True)
    model_name = models.CharField(max_length=200, blank=True)
    ttft_count = models.BigIntegerField(default=0)
    ttft_sum_ms = models.FloatField(default=0)
    latency_histogram = models.JSONField(default=empty)
    ttft_histogram = models.JSONField(default=empty)

    class Meta:
        indexes = [models.Index(fields=["hour"], name="rollup_model_hour")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.provider_name}/{self.model_name}"


class ModelDailyRollup(Daily):
    """One day × provider × model, with histograms (``ModelHourlyRollup`` by day)."""

    provider_name = models.CharField(max_length=64, blank=True)
    model_name = models.CharField(max_length=200, blank=True)
    ttft_count = models.BigIntegerField(default=0)
    ttft_sum_ms = models.FloatField(default=0)
    latency_histogram = models.JSONField(default=empty)
    ttft_histogram = models.JSONField(default=empty)

    class Meta:
        indexes = [models.Index(fields=["day"], name="rollup_model_day")]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.provider_name}/{self.model_name}"


class VariantHourlyRollup(Figures):
    """One hour × experiment variant × status (the calls that carry a variant): an
    experiment's figures per variant, its success row's histogram the successful calls'
    latencies."""

    experiment_variant_id = models.BigIntegerField()
    status = models.CharField(max_length=16)
    latency_histogram = models.JSONField(default=empty)

    class Meta:
        indexes = [
            models.Index(fields=["hour"], name="rollup_variant_hour"),
            models.Index(fields=["experiment_variant_id", "hour"], name="rollup_variant_id_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h variant {self.experiment_variant_id} {self.status}"


class VariantDailyRollup(Daily):
    """One day × experiment variant × status (``VariantHourlyRollup`` by day)."""

    experiment_variant_id = models.BigIntegerField()
    status = models.CharField(max_length=16)
    latency_histogram = models.JSONField(default=empty)

    class Meta:
        indexes = [
            models.Index(fields=["day"], name="rollup_variant_day"),
            models.Index(fields=["experiment_variant_id", "day"], name="rollup_variant_id_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} variant {self.experiment_variant_id} {self.status}"
