"""``manage.py run_maintenance``: the periodic work of queues and schedules in one command."""

from django.apps import AppConfig


class MaintenanceConfig(AppConfig):
    name = "maintenance"
    verbose_name = "Maintenance"
