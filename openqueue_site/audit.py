"""The audit trail of operator actions: Django's admin history and a JSON log event.

Every state-changing action a person takes in the admin or the console,
on jobs, queues, schedules, tokens or users, calls ``record``: one
``LogEntry`` (the admin's "Recent actions" and the object's History page)
and one ``operator_action`` log line, naming who did what to how many rows.
Bulk actions write one entry for the whole batch, not one per row: a
requeue of 100,000 dead jobs must not write 100,000 history rows.
"""

from __future__ import annotations

import logging

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import Model
from django.http import HttpRequest

logger = logging.getLogger("openqueue.audit")

FLAGS = {"added": ADDITION, "changed": CHANGE, "deleted": DELETION}


def record(
    request: HttpRequest,
    *,
    action: str,
    model: type[Model],
    count: int,
    obj: Model | None = None,
    detail: str = "",
    kind: str = "changed",
) -> None:
    """Record that ``request.user`` did ``action`` to ``count`` rows of ``model``.

    ``obj``: the one row acted on, when there is one (its History page
    shows the entry). ``kind``: "added", "changed" or "deleted".
    """
    user = request.user
    if user.pk is None:
        raise ValueError("only a signed-in user's actions are recorded")
    meta = model._meta
    noun = meta.verbose_name if count == 1 else meta.verbose_name_plural
    message = f"{action} {count} {noun}" + (f" ({detail})" if detail else "")
    LogEntry.objects.create(
        user_id=int(user.pk),
        content_type=ContentType.objects.get_for_model(model),
        object_id=str(obj.pk) if obj is not None else None,
        object_repr=(str(obj) if obj is not None else f"{count} {noun}")[:200],
        action_flag=FLAGS[kind],
        change_message=message[:2000],
    )
    logger.info(
        "operator_action",
        extra={
            "actor": getattr(user, "email", ""),
            "actor_id": user.pk,
            "via": "admin" if request.path_info.startswith("/admin/") else "console",
            "action": action,
            "model": meta.label,
            "count": count,
            "object_id": str(obj.pk) if obj is not None else None,
            "detail": detail,
        },
    )
