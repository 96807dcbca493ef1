"""Pagination that does not count a million rows on every page view."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.utils.functional import cached_property

from queues.store import get_store


class EstimatedCountPaginator(Paginator):
    """Counts through the storage engine: exact for small results, PostgreSQL's
    estimate for big ones (queues/store/postgres.py).

    The admin counts the (filtered) list on every page view; ``COUNT(*)`` over
    a million rows reads them all. Page numbers near the end may therefore be
    approximate.
    """

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return super().count
        return get_store(queryset.db).estimated_count(queryset)
