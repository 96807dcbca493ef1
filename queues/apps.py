"""Jobs: the model, the transitions (services.py) and their storage (store/)."""

from django.apps import AppConfig
from django.db.backends.signals import connection_created


class QueuesConfig(AppConfig):
    name = "queues"
    verbose_name = "Queues"

    def ready(self) -> None:
        from queues.store import pgtypes

        connection_created.connect(pgtypes.install, dispatch_uid="openqueue-fast-timestamps")
