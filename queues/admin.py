from django.contrib import admin

from queues.models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    """Read-only for now: state changes go through queues/services.py."""

    list_display = ["id", "queue_name", "status", "owner", "priority", "retry_count", "created_at"]
    list_filter = ["status"]
    search_fields = ["queue_name", "owner__email"]
    show_full_result_count = False
    list_select_related = ["owner"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
