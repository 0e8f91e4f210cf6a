"""The JSON API over real HTTP, with real tokens from a running auth provider."""

from __future__ import annotations

import json
import re
import uuid

import httpx
import pytest

from platform_kit.cursor import encode_id
from tasks import consumers, domain
from tests.auth.support import People, Person
from tests.tasks.conftest import count_rows, last_outbox_row, stored_events
from tests.tasks.support import TASK_FIELDS, TRACEPARENT, create_via_api, feed_replica

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.fixture
def api(tasks_url, engine) -> str:
    """The tasks app, its database emptied for this test."""
    return tasks_url


@pytest.fixture
def only_worker_eligible(sessions, people: People) -> Person:
    """The worker is the one account that may get tasks (besides admin and manager)."""
    feed_replica(sessions, people.worker, people.manager, people.admin)
    return people.worker


def deactivate(sessions, person: Person) -> None:
    with sessions() as session, session.begin():
        consumers.apply_account_state(
            session, uuid.UUID(person.id), email=person.login.email, full_name=person.name,
            role=person.login.role, active=False, version=2)


def nothing_stored(engine) -> bool:
    return count_rows(engine, "tasks") == 0 and count_rows(engine, "outbox") == 0


# -- creating -----------------------------------------------------------------------------


def test_create_answers_201_with_the_task_as_the_spec_shapes_it(api, people,
                                                                only_worker_eligible):
    response = httpx.post(f"{api}/api/tasks", headers=people.manager.headers, json={
        "title": " Fix the button ", "jira_id": "uberpop-42", "description": "It is broken."})

    task = response.json()
    assert response.status_code == 201
    assert response.headers["location"] == f"/api/tasks/{task['id']}"
    assert set(task) == TASK_FIELDS
    assert task | {"id": None, "created_at": None} == {
        "id": None, "title": "Fix the button", "jira_id": "UBERPOP-42",
        "description": "It is broken.", "status": "open", "assignee_id": people.worker.id,
        "created_at": None, "completed_at": None}
    assert str(uuid.UUID(task["id"])) == task["id"]
    assert RFC3339_UTC.match(task["created_at"])
    fetched = httpx.get(f"{api}/api/tasks/{task['id']}", headers=people.accountant.headers)
    assert fetched.status_code == 200 and fetched.json() == task


def test_create_writes_its_events_with_the_request_trace_context(api, engine, people,
                                                                 only_worker_eligible):
    headers = people.worker.headers | {"traceparent": TRACEPARENT}
    task = httpx.post(f"{api}/api/tasks", json={"title": "Feed the parrots"},
                      headers=headers).json()

    events = stored_events(engine)

    assert [(s.topic, s.key, s.event.type) for s in events] == [
        ("tasks-stream", task["id"], "task.created"),
        ("tasks-lifecycle", task["id"], "task.added"),
        ("tasks-lifecycle", task["id"], "task.assigned"),
    ]
    assert all(s.event.traceparent == s.headers["traceparent"] == TRACEPARENT for s in events)
    created, added, assigned = (s.event.data for s in events)
    assert created["assignee_id"] == assigned["assignee_id"] == people.worker.id
    assert added["created_by"] == people.worker.id
    assert created["created_at"] == task["created_at"]


@pytest.mark.parametrize("traceparent", ["garbage", "00-" + "0" * 32 + "-00f067aa0ba902b7-01"])
def test_a_malformed_trace_context_is_ignored(api, engine, people, only_worker_eligible,
                                              traceparent):
    response = httpx.post(f"{api}/api/tasks", json={"title": "Feed the parrots"},
                          headers=people.worker.headers | {"traceparent": traceparent})

    assert response.status_code == 201
    assert all(s.event.traceparent is None for s in stored_events(engine))


@pytest.mark.parametrize("body, detail", [
    ({"title": "[UBERPOP-42] Fix the button"}, "title must not contain [ or ]: put the Jira"),
    ({"title": "Fix ] it"}, "title must not contain [ or ]"),
    ({"title": "Fix", "jira_id": "42-UBERPOP"}, "jira_id must look like UBERPOP-42"),
    ({"title": ""}, "title is required"),
    ({"title": "   "}, "title is required"),
    ({"title": "x" * 201}, "title must be at most 200 characters"),
    ({"title": "Fix", "description": "x" * 10_001}, "description must be at most 10000"),
    ({}, "title: Field required"),
    ({"title": None}, "title: Input should be a valid string"),
    ({"title": "Fix", "status": "done"}, "status: Extra inputs are not permitted"),
])
def test_bad_input_answers_422_with_a_clear_message_and_stores_nothing(
        api, engine, people, only_worker_eligible, body, detail):
    response = httpx.post(f"{api}/api/tasks", json=body, headers=people.worker.headers)

    assert response.status_code == 422
    assert response.json() == {"detail": response.json()["detail"]}
    assert response.json()["detail"].startswith(detail)
    assert nothing_stored(engine)


def test_a_body_that_is_not_json_answers_422(api, engine, people, only_worker_eligible):
    response = httpx.post(f"{api}/api/tasks", content=b"title=Fix",
                          headers=people.worker.headers | {"Content-Type": "application/json"})

    assert response.status_code == 422 and "JSON" in response.json()["detail"]
    assert nothing_stored(engine)


UNSTORABLE = "must not contain NUL characters or lone surrogates"


@pytest.mark.parametrize("body, field", [
    ({"title": "Fix\u0000 the button"}, "title"),
    ({"title": "Fix \ud800 the button"}, "title"),
    ({"title": "Fix", "description": "Broken\u0000"}, "description"),
    ({"title": "Fix", "description": "Broken \udfff"}, "description"),
    ({"title": "Fix", "jira_id": "UBERPOP-1\u0000"}, "jira_id"),
])
def test_nul_characters_and_lone_surrogates_answer_422_and_store_nothing(
        api, engine, people, only_worker_eligible, body, field):
    raw = json.dumps(body)  # escapes them as JSON does: \u0000, \ud800
    response = httpx.post(f"{api}/api/tasks", content=raw,
                          headers=people.worker.headers | {"Content-Type": "application/json"})

    assert response.status_code == 422
    assert response.json() == {"detail": f"{field}: {UNSTORABLE}"}
    assert nothing_stored(engine)


@pytest.mark.parametrize("query", ["assignee=%00", "cursor=a%00b", "status=open%00",
                                   "limit=1%00", "q%00=1"])
def test_a_nul_character_in_the_query_string_answers_400(api, people, query):
    response = httpx.get(f"{api}/api/tasks?{query}", headers=people.worker.headers)

    assert response.status_code == 400
    assert response.json() == {"detail": f"The address {UNSTORABLE}."}


def test_a_deactivated_account_is_refused_at_once(api, engine, sessions, people,
                                                  only_worker_eligible):
    deactivate(sessions, people.manager)

    created = httpx.post(f"{api}/api/tasks", json={"title": "Fix"},
                         headers=people.manager.headers)
    listed = httpx.get(f"{api}/api/tasks", headers=people.manager.headers)

    assert [created.status_code, listed.status_code] == [401, 401]
    assert created.json() == {"detail": "the account is deactivated"}
    assert nothing_stored(engine)
    assert httpx.get(f"{api}/api/tasks", headers=people.worker.headers).status_code == 200


def test_a_deleted_account_is_refused_at_once(api, engine, sessions, people,
                                              only_worker_eligible):
    with sessions() as session, session.begin():
        consumers.apply_account_deleted(session, uuid.UUID(people.manager.id), version=2)

    created = httpx.post(f"{api}/api/tasks", json={"title": "Fix"},
                         headers=people.manager.headers)

    assert created.status_code == 401
    assert created.json() == {"detail": "the account is deleted"}
    assert nothing_stored(engine)


def test_an_account_the_replica_has_not_heard_of_yet_may_act(api, engine, people):
    listed = httpx.get(f"{api}/api/tasks", headers=people.worker.headers)

    assert listed.status_code == 200


def test_without_eligible_assignee_create_answers_409_and_stores_nothing(api, engine, sessions,
                                                                        people):
    feed_replica(sessions, people.manager, people.admin, people.other_worker)
    deactivate(sessions, people.other_worker)

    response = httpx.post(f"{api}/api/tasks", json={"title": "Feed the parrots"},
                          headers=people.manager.headers)

    assert response.status_code == 409
    assert response.json()["detail"].startswith("no one can take the task")
    assert nothing_stored(engine)


# -- completing ---------------------------------------------------------------------------


def test_only_the_assignee_completes_a_task_and_only_once(api, engine, people,
                                                          only_worker_eligible):
    task = create_via_api(api, people.manager, "Feed the parrots")
    url = f"{api}/api/tasks/{task['id']}/complete"
    before = last_outbox_row(engine)

    refusals = [httpx.post(url, headers=someone.headers)
                for someone in (people.other_worker, people.manager, people.admin)]
    assert [r.status_code for r in refusals] == [403, 403, 403]
    assert refusals[0].json() == {
        "detail": f"only the current assignee may complete task {task['id']}"}
    assert last_outbox_row(engine) == before

    done = httpx.post(url, headers=people.worker.headers | {"traceparent": TRACEPARENT})
    again = httpx.post(url, headers=people.worker.headers)

    assert done.status_code == 200 and set(done.json()) == TASK_FIELDS
    assert done.json() | {"completed_at": None} == task | {"status": "done"}
    assert RFC3339_UTC.match(done.json()["completed_at"])
    assert again.status_code == 409
    assert again.json() == {"detail": f"task {task['id']} is already done"}
    events = stored_events(engine, before)
    assert [(s.event.type, s.event.traceparent) for s in events] == [
        ("task.updated", TRACEPARENT), ("task.completed", TRACEPARENT)]
    fetched = httpx.get(f"{api}/api/tasks/{task['id']}", headers=people.worker.headers)
    assert fetched.json() == done.json()


def test_unknown_tasks_answer_404_and_malformed_ids_422(api, people):
    unknown = uuid.uuid4()

    fetched = httpx.get(f"{api}/api/tasks/{unknown}", headers=people.worker.headers)
    completed = httpx.post(f"{api}/api/tasks/{unknown}/complete", headers=people.worker.headers)
    malformed = httpx.get(f"{api}/api/tasks/42", headers=people.worker.headers)

    assert fetched.status_code == completed.status_code == 404
    assert fetched.json() == {"detail": f"task {unknown} does not exist"}
    assert malformed.status_code == 422
    assert malformed.json()["detail"].startswith("task_id: Input should be a valid UUID")


# -- reshuffling --------------------------------------------------------------------------


def test_admins_and_managers_reshuffle_every_open_task(api, engine, sessions, people):
    feed_replica(sessions, people.worker, people.manager, people.admin)
    tasks = [create_via_api(api, people.worker, f"Task {n}") for n in range(3)]
    httpx.post(f"{api}/api/tasks/{tasks[0]['id']}/complete", headers=people.worker.headers)
    feed_replica(sessions, people.other_worker, people.accountant)
    before = last_outbox_row(engine)

    answers = [httpx.post(f"{api}/api/tasks/reshuffle",
                          headers=boss.headers | {"traceparent": TRACEPARENT})
               for boss in (people.manager, people.admin)]

    assert [(a.status_code, a.json()) for a in answers] == [(200, {"reassigned": 2})] * 2
    events = stored_events(engine, before)
    assert sorted(s.event.type for s in events) == ["task.assigned"] * 4 + ["task.updated"] * 4
    assert {s.key for s in events} == {tasks[1]["id"], tasks[2]["id"]}
    assert all(s.event.traceparent == TRACEPARENT for s in events)
    eligible = {people.worker.id, people.other_worker.id, people.accountant.id}
    for task in tasks[1:]:
        body = httpx.get(f"{api}/api/tasks/{task['id']}", headers=people.worker.headers).json()
        assert body["status"] == "open" and body["assignee_id"] in eligible


@pytest.mark.parametrize("role", ["worker", "accountant"])
def test_others_may_not_reshuffle(api, engine, people, only_worker_eligible, role):
    create_via_api(api, people.worker, "Feed the parrots")
    before = last_outbox_row(engine)

    response = httpx.post(f"{api}/api/tasks/reshuffle", headers=getattr(people, role).headers)

    assert response.status_code == 403
    assert response.json() == {"detail": "only admins and managers may reshuffle tasks"}
    assert last_outbox_row(engine) == before


def test_reshuffle_without_eligible_assignee_answers_409(api, engine, sessions, people,
                                                         only_worker_eligible):
    create_via_api(api, people.worker, "Feed the parrots")
    deactivate(sessions, people.worker)
    before = last_outbox_row(engine)

    response = httpx.post(f"{api}/api/tasks/reshuffle", headers=people.manager.headers)

    assert response.status_code == 409 and "no one can take the task" in response.json()["detail"]
    assert last_outbox_row(engine) == before


# -- listing ------------------------------------------------------------------------------


def test_the_list_comes_in_pages_newest_first(api, people, only_worker_eligible):
    created = [create_via_api(api, people.manager, f"Task {n}")["id"] for n in range(5)]

    pages, url = [], f"{api}/api/tasks?limit=2"
    while url:
        body = httpx.get(url, headers=people.accountant.headers).json()
        assert set(body) == {"items", "next", "total", "total_exact"}
        assert (body["total"], body["total_exact"]) == (5, True)
        assert all(set(item) == TASK_FIELDS for item in body["items"])
        pages.append([item["id"] for item in body["items"]])
        url = body["next"] and f"{api}/api/tasks?limit=2&cursor={body['next']}"

    newest_first = created[::-1]
    assert pages == [newest_first[:2], newest_first[2:4], newest_first[4:]]


def test_the_list_filters_by_assignee_and_status(api, sessions, people):
    feed_replica(sessions, people.other_worker, people.manager)
    theirs = create_via_api(api, people.manager, "Theirs")["id"]
    feed_replica(sessions, people.worker)
    deactivate(sessions, people.other_worker)
    done, still_open = (create_via_api(api, people.manager, title)["id"]
                        for title in ("Done", "Open"))
    httpx.post(f"{api}/api/tasks/{done}/complete", headers=people.worker.headers)

    def ids(query: str, person: Person = people.worker) -> list[str]:
        response = httpx.get(f"{api}/api/tasks?{query}", headers=person.headers)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert ids("") == [still_open, done, theirs]
    assert ids("assignee=me") == [still_open, done]
    assert ids("assignee=me&status=open") == [still_open]
    assert ids("assignee=me&status=done") == [done]
    assert ids(f"assignee={people.other_worker.id}") == [theirs]
    assert ids("status=open") == [still_open, theirs]
    assert ids("assignee=me", people.manager) == []


def test_the_list_searches_filters_by_creator_and_names_and_sorts(api, sessions, people,
                                                                  only_worker_eligible):
    feed = create_via_api(api, people.manager, "Feed the parrots", jira_id="UBERPOP-7")["id"]
    cage = create_via_api(api, people.worker, "Clean the cage",
                          description="Fresh millet after")["id"]
    mail = create_via_api(api, people.worker, "Answer mail")["id"]

    def listed(query: str, person: Person = people.worker) -> tuple[list[str], int]:
        response = httpx.get(f"{api}/api/tasks?{query}", headers=person.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        return [item["id"] for item in body["items"]], body["total"]

    assert listed("q=uberpop-7") == ([feed], 1)
    assert listed("q=MILLET") == ([cage], 1)
    assert listed("creator=me") == ([mail, cage], 2)
    assert listed(f"creator={people.manager.id}") == ([feed], 1)
    assert listed("creator_name=kesha&sort=oldest") == ([cage, mail], 2)
    assert listed("assignee_name=Kesha Worker&q=a&sort=title") == ([mail, cage, feed], 3)
    assert listed("assignee_name=nobody like this") == ([], 0)
    assert listed("sort=title&limit=1") == ([mail], 3)


@pytest.mark.parametrize("query, detail", [
    ("status=closed", "status: Input should be 'open' or 'done'"),
    ("assignee=nobody", "assignee must be 'me' or an account id, not 'nobody'"),
    ("creator=nobody", "creator must be 'me' or an account id, not 'nobody'"),
    ("sort=random", "sort: Input should be 'newest', 'oldest' or 'title'"),
    (f"q={'x' * 201}", "the search must be at most 200 characters"),
    ("cursor=not-a-cursor", "invalid cursor"),
    (f"cursor={encode_id(uuid.uuid4())}", "invalid cursor"),
    ("limit=0", "limit: Input should be greater than or equal to 1"),
    ("limit=201", "limit: Input should be less than or equal to 200"),
])
def test_bad_query_parameters_answer_422(api, people, query, detail):
    response = httpx.get(f"{api}/api/tasks?{query}", headers=people.worker.headers)

    assert response.status_code == 422 and response.json() == {"detail": detail}


# -- who may call -------------------------------------------------------------------------


@pytest.mark.parametrize("headers, detail", [
    ({}, "not authenticated"),
    ({"Authorization": "Bearer not-a-token"}, "invalid token"),
    ({"Authorization": "Basic d29ya2VyOnB3"}, "Authorization header must be"),
])
def test_without_a_valid_token_every_route_answers_401(api, engine, headers, detail):
    task = uuid.uuid4()
    calls = [("POST", "/api/tasks"), ("GET", "/api/tasks"), ("GET", f"/api/tasks/{task}"),
             ("POST", f"/api/tasks/{task}/complete"), ("POST", "/api/tasks/reshuffle")]

    responses = [httpx.request(method, f"{api}{path}", headers=headers, json={"title": "Fix"})
                 for method, path in calls]

    assert [r.status_code for r in responses] == [401] * len(calls)
    assert all(r.json()["detail"].startswith(detail) for r in responses)
    assert nothing_stored(engine)


def test_a_service_client_may_read_but_not_act_as_a_person(api, engine, auth_provider,
                                                           only_worker_eligible):
    token = httpx.post(f"{auth_provider.url}/oauth/token",
                       data={"grant_type": "client_credentials"},
                       auth=("reports", "reports-secret")).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}

    listed = httpx.get(f"{api}/api/tasks", headers=headers)
    created = httpx.post(f"{api}/api/tasks", json={"title": "Fix"}, headers=headers)

    assert listed.status_code == 200
    assert listed.json() == {"items": [], "next": None, "total": 0, "total_exact": True}
    assert created.status_code == 403 and "service client" in created.json()["detail"]
    assert nothing_stored(engine)


def test_openapi_describes_the_routes_and_the_task(api):
    spec = httpx.get(f"{api}/openapi.json").json()

    assert {path: sorted(spec["paths"][path]) for path in spec["paths"]} == {
        "/api/tasks": ["get", "post"],
        "/api/tasks/reshuffle": ["post"],
        "/api/tasks/{task_id}": ["get"],
        "/api/tasks/{task_id}/complete": ["post"],
    }
    task_schema = spec["components"]["schemas"]["TaskOut"]
    assert set(task_schema["properties"]) == TASK_FIELDS
    assert tuple(task_schema["properties"]["status"]["enum"]) == domain.STATUSES
    assert "201" in spec["paths"]["/api/tasks"]["post"]["responses"]
    assert httpx.get(f"{api}/docs").status_code == 200
