"""Smoke run of the load generator against a real server process.

The benchmark itself (bench/run.py) is not part of the test suite; this
proves its load generator still speaks the API and that its database check
works, on SQLite and on PostgreSQL, with a handful of jobs.
"""

import pytest

from bench import loadgen
from conftest import current_database_url

REPORT_KEYS = {
    "scenario",
    "params",
    "skipped",
    "jobs",
    "seconds",
    "jobs_per_s",
    "requests",
    "stopped_by",
    "errors",
    "request_latency_ms",
    "cpu_seconds",
    "cpu_percent_of_wall",
    "check",
}


@pytest.mark.live_server
def test_loadgen_enqueue_and_drain_pass_their_database_check(live_server_factory, make_tenant):
    tenant = make_tenant()
    server = live_server_factory(
        workers=1, threads=4, env={"OPENQUEUE_RATE_LIMIT_ENABLED": "false"}
    )
    target = loadgen.Target(server.url, tenant.token, current_database_url())

    enqueued = loadgen.single_enqueue(target, jobs=20, threads=2, max_seconds=60)
    drained = loadgen.drain(target, jobs=20, workers=2, max_seconds=60)
    batched = loadgen.batch_lease_ack(target, jobs=20, workers=2, batch_size=7, max_seconds=60)

    for result in (enqueued, drained, batched):
        assert REPORT_KEYS <= result.as_dict().keys()
        assert result.skipped is None
        assert result.errors == {}
        assert result.check["ok"] is True, result.check["problems"]
        assert result.check["jobs_in_db"] == 20
        assert result.jobs == 20
    assert enqueued.check["statuses"] == {"pending": 20}
    for result in (drained, batched):
        assert result.check["statuses"] == {"completed": 20}
        assert result.stopped_by == "empty"


@pytest.mark.live_server
def test_loadgen_check_catches_a_job_it_did_not_enqueue(live_server_factory, make_tenant):
    tenant = make_tenant()
    server = live_server_factory(
        workers=1, threads=2, env={"OPENQUEUE_RATE_LIMIT_ENABLED": "false"}
    )
    target = loadgen.Target(server.url, tenant.token, current_database_url())
    client = target.http()
    status, _ = client.call("POST", "/jobs", {"queue_name": "stray", "payload": {}})
    assert status == 201

    check = loadgen.verify(
        target.database_url, "stray", loadgen.Recorder(), lifecycle=False, all_done=True
    )

    assert check["ok"] is False
    assert check["problems"] == ["1 jobs in the queue that no enqueue returned"]
