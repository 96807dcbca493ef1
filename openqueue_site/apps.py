from django.contrib.admin.apps import AdminConfig


class OpenQueueAdminConfig(AdminConfig):
    """Django's admin app, with our site (openqueue_site/admin.py) as ``admin.site``."""

    default_site = "openqueue_site.admin.OpenQueueAdminSite"
