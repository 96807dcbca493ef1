"""ASGI entry point (``openqueue_site.asgi:application``); gunicorn serves WSGI by default."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openqueue_site.settings")

application = get_asgi_application()
