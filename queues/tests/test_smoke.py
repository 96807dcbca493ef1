import httpx


def test_health_answers_ok_without_auth(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_live_server_serves_the_api_from_the_test_database(live_server_factory, make_tenant):
    tenant = make_tenant()
    server = live_server_factory()
    headers = {"Authorization": f"Bearer {tenant.token}"}
    created = httpx.post(f"{server.url}/jobs", json={"payload": {"a": 1}}, headers=headers)
    assert created.status_code == 201
    status = httpx.get(f"{server.url}/jobs/{created.json()['job_id']}", headers=headers)
    assert status.json()["status"] == "pending"
