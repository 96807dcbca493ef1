"""Settings of the demo project: tasks go to the OpenQueue server in OPENQUEUE_URL."""

import os

SECRET_KEY = "demo-project-for-tests-only"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["django_tasks", "openqueue_client.django", "demo"]
# The worker closes each task thread's connections; the "uses_db" task opens one.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DEMO_DATABASE", ":memory:"),
    }
}
TASKS = {
    "default": {
        "BACKEND": "openqueue_client.django.OpenQueueBackend",
        "QUEUES": ["default", "reports"],
        "OPTIONS": {
            "url": os.environ["OPENQUEUE_URL"],
            "token": os.environ["OPENQUEUE_TOKEN"],
        },
    }
}
