"""The rate-limit buckets every server process shares (ratelimits/buckets.py)."""

from __future__ import annotations

from django.db import models


class RateLimitBucket(models.Model):
    """One token bucket per key: ``<tenant>:<action>`` or ``authfail:<address>``.

    ratelimits/buckets.py refills and spends it with a single atomic UPSERT.
    """

    key = models.CharField(primary_key=True, max_length=100)
    tokens = models.FloatField()
    refilled_at = models.FloatField(help_text="Unix time of the last refill.")
    # Whether the last request was let through: the UPSERT writes and
    # returns it, so each request learns its own outcome atomically.
    last_allowed = models.BooleanField(default=True)

    class Meta:
        db_table = "rate_limit_buckets"

    def __str__(self) -> str:
        return self.key
