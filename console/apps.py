"""The web console: a tenant's queues, jobs, dead-letter queue and API tokens."""

from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = "Console"
