"""Cron schedules: jobs a tenant's schedule enqueues on its own (contract A.4)."""

from django.apps import AppConfig


class SchedulesConfig(AppConfig):
    name = "schedules"
    verbose_name = "Schedules"
