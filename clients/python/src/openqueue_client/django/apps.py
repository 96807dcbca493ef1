from django.apps import AppConfig


class OpenQueueClientConfig(AppConfig):
    name = "openqueue_client.django"
    # The default label would be "django", which Django's own apps would clash with.
    label = "openqueue_client"
    verbose_name = "OpenQueue client"
