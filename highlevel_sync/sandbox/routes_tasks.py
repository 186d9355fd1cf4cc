"""Tasks (`POST /locations/{locationId}/tasks/search`) and notes (`GET /contacts/{contactId}/notes`).

Both are `Version: 2021-07-28` routes (locations.json, contacts.json), as is one task by id
(`GET /contacts/{contactId}/tasks/{taskId}`, scope `contacts.readonly`). Faithful where a client can
go wrong: the body's `skip`/`limit` are numbers (spec defaults 0 and 25; the spec states no
maximum, this sandbox refuses more than 100), the path's location must be the token's, a token
without the route's scope gets HighLevel's 401 "not authorized for this scope" (tasks:
`locations/tasks.readonly`, notes: `contacts.readonly`), and notes come unpaged, all of one
contact's at once, as the spec has them. An unknown contact answers 404 (the spec lists only 400
and 401; see the appointment-by-id route for the same choice).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from starlette.routing import Route

from .gateway import ApiFailure, Call, Gateway, require_location, unprocessable
from .tasks_notes import notes_of
from .world import World

V0728 = "2021-07-28"
TASKS_SCOPE = "locations/tasks.readonly"
NOTES_SCOPE = "contacts.readonly"
TASKS_MAX_LIMIT = 100
NOT_AUTHORIZED = "The token is not authorized for this scope."


def _scope(call: Call, scope: str) -> None:
    if scope not in call.token.scopes:
        raise ApiFailure(401, NOT_AUTHORIZED, "Unauthorized")


def _number(body: dict[str, Any], name: str, default: int, low: int, high: int | None) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise unprocessable(f"{name} must be a number conforming to the specified constraints")
    if value < low:
        raise unprocessable(f"{name} must not be less than {low}")
    if high is not None and value > high:
        raise unprocessable(f"{name} must not be greater than {high}")
    return int(value)


def _id_list(body: dict[str, Any], name: str) -> set[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise unprocessable(f"{name} must be an array of strings")
    return set(value)


def search_tasks(world: World, call: Call) -> dict[str, Any]:
    """Every task of the location matching the filters, oldest first (ties by id), `skip`/`limit`."""
    _scope(call, TASKS_SCOPE)
    location_id = require_location(call, call.request.path_params["location_id"])
    loc = world.location(location_id)
    if loc is None:
        raise ApiFailure(400, "Location not found")
    body = call.body if call.body is not None else {}
    if not isinstance(body, dict):
        raise unprocessable("body must be a JSON object")
    limit = _number(body, "limit", 25, 1, TASKS_MAX_LIMIT)
    skip = _number(body, "skip", 0, 0, None)
    contacts, assigned = _id_list(body, "contactId"), _id_list(body, "assignedTo")
    completed, query = body.get("completed"), body.get("query")
    if completed is not None and not isinstance(completed, bool):
        raise unprocessable("completed must be a boolean value")
    if query is not None and not isinstance(query, str):
        raise unprocessable("query must be a string")
    with world.lock:
        rows = [dict(t) for t in loc.extra["tasks"].values()
                if (contacts is None or t["contactId"] in contacts)
                and (assigned is None or t["assignedTo"] in assigned)
                and (completed is None or t["completed"] is completed)
                and (not query or query.lower() in f"{t['title']} {t['body']}".lower())]
    rows.sort(key=lambda t: (t["dateAdded"], t["id"]))
    return {"tasks": rows[skip:skip + limit]}


def contact_task(world: World, call: Call) -> dict[str, Any]:
    """`GET /contacts/{contactId}/tasks/{taskId}` -> `{"task": {...}}`, open or completed. A task
    that is gone, or is not that contact's, answers 404 (undocumented: the spec lists 400 and 401)."""
    _scope(call, NOTES_SCOPE)  # the contacts family's scope, as the spec has it
    contact_id, task_id = call.request.path_params["contact_id"], call.request.path_params["task_id"]
    with world.lock:
        loc = world.location(call.token.location_id or "")
        task = loc.extra["tasks"].get(task_id) if loc is not None else None
        if task is None or task["contactId"] != contact_id:
            raise ApiFailure(404, "Task not found", "Not Found")
        return {"task": dict(task)}


def contact_notes(world: World, call: Call) -> dict[str, Any]:
    """`{"notes": [...]}`: all of one contact's notes, newest first."""
    _scope(call, NOTES_SCOPE)
    contact_id = call.request.path_params["contact_id"]
    with world.lock:
        loc = world.location(call.token.location_id or "")
        if loc is None or contact_id not in loc.contacts.truth:
            raise ApiFailure(404, "Contact not found", "Not Found")
        return {"notes": [dict(n) for n in notes_of(loc, contact_id)]}


def routes(world: World, gw: Gateway) -> list[Route]:
    return [
        Route("/locations/{location_id}/tasks/search", gw.route(V0728, partial(search_tasks, world)),
              methods=["POST"]),
        Route("/contacts/{contact_id}/notes", gw.route(V0728, partial(contact_notes, world)), methods=["GET"]),
        Route("/contacts/{contact_id}/tasks/{task_id}", gw.route(V0728, partial(contact_task, world)),
              methods=["GET"]),
    ]
