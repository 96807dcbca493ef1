"""The console's pages (server-rendered, Django's session login)."""

from django.urls import path
from django.views.generic import RedirectView

from console import jobs, queues, schedules, tokens

urlpatterns = [
    path("", RedirectView.as_view(url="/console/"), name="home"),
    path("console/", jobs.queue_list, name="console-queues"),
    path("console/queues/<str:queue_name>/", queues.queue_detail, name="console-queue"),
    path(
        "console/queues/<str:queue_name>/control/",
        queues.queue_control,
        name="console-queue-control",
    ),
    path("console/schedules/", schedules.schedule_list, name="console-schedules"),
    path("console/schedules/<str:name>/", schedules.schedule_detail, name="console-schedule"),
    path(
        "console/schedules/<str:name>/action/",
        schedules.schedule_action,
        name="console-schedule-action",
    ),
    path("console/jobs/", jobs.job_list, name="console-jobs"),
    path("console/jobs/<uuid:job_id>/", jobs.job_detail, name="console-job"),
    path("console/jobs/<uuid:job_id>/requeue/", jobs.job_requeue, name="console-job-requeue"),
    path("console/jobs/<uuid:job_id>/cancel/", jobs.job_cancel, name="console-job-cancel"),
    path("console/jobs/<uuid:job_id>/run-now/", jobs.job_run_now, name="console-job-run-now"),
    path("console/in-flight/", jobs.in_flight, name="console-in-flight"),
    path("console/dlq/", jobs.dlq_list, name="console-dlq"),
    path("console/dlq/action/", jobs.dlq_action, name="console-dlq-action"),
    path("console/tokens/", tokens.token_list, name="console-tokens"),
    path(
        "console/tokens/<int:token_id>/revoke/",
        tokens.token_revoke,
        name="console-token-revoke",
    ),
]
