"""The console's pages (server-rendered, Django's session login)."""

from django.urls import path
from django.views.generic import RedirectView

from console import jobs, tokens

urlpatterns = [
    path("", RedirectView.as_view(url="/console/"), name="home"),
    path("console/", jobs.queue_list, name="console-queues"),
    path("console/jobs/", jobs.job_list, name="console-jobs"),
    path("console/jobs/<uuid:job_id>/", jobs.job_detail, name="console-job"),
    path("console/jobs/<uuid:job_id>/requeue/", jobs.job_requeue, name="console-job-requeue"),
    path("console/jobs/<uuid:job_id>/cancel/", jobs.job_cancel, name="console-job-cancel"),
    path("console/dlq/", jobs.dlq_list, name="console-dlq"),
    path("console/dlq/action/", jobs.dlq_action, name="console-dlq-action"),
    path("console/tokens/", tokens.token_list, name="console-tokens"),
    path(
        "console/tokens/<int:token_id>/revoke/",
        tokens.token_revoke,
        name="console-token-revoke",
    ),
]
