"""WSGI entry point (``openqueue_site.wsgi:application``), what gunicorn serves."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openqueue_site.settings")

application = get_wsgi_application()
