"""OpenQueue as a backend for Django's tasks API.

In settings::

    INSTALLED_APPS = [..., "openqueue_client.django"]   # for manage.py openqueue_worker
    TASKS = {
        "default": {
            "BACKEND": "openqueue_client.django.OpenQueueBackend",
            "QUEUES": ["default", "emails"],
            "OPTIONS": {"url": "http://localhost:8000", "token": "oq_live_…"},
        }
    }

``django.tasks`` on Django 6.0+, the ``django-tasks`` backport on Django 5.2.
"""

from typing import Any

__all__ = ["OpenQueueBackend"]


def __getattr__(name: str) -> Any:
    # Lazy, so that listing the app in INSTALLED_APPS does not import the
    # tasks framework before Django's settings are ready.
    if name == "OpenQueueBackend":
        from openqueue_client.django.backend import OpenQueueBackend

        return OpenQueueBackend
    raise AttributeError(name)
