"""Opportunities, pipelines, conversations, messages, calendars and appointments: seed and mutate.

Formats follow what the API really sends, deliberately mixed: opportunities ISO `Z`, conversation
`lastMessageDate` epoch ms, messages ISO `Z`, appointments ISO with the location's offset.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from . import data
from .account_lists import seed_account_lists
from .index import IndexedRecords, Record
from .objects_data import seed_objects
from .revenue_data import seed_revenue
from .tasks_notes import seed_tasks_notes
from .world import Location, World

OPP_SORTS = {"updatedAt": lambda r: data.ms_of(r["updatedAt"]), "createdAt": lambda r: data.ms_of(r["createdAt"])}
STATUSES = ("open", "won", "lost", "abandoned")
CHANNELS = {  # export channel -> (messageType, numeric type)
    "SMS": ("TYPE_SMS", 2), "Email": ("TYPE_EMAIL", 3), "Call": ("TYPE_CALL", 1),
    "WhatsApp": ("TYPE_WHATSAPP", 19), "Facebook": ("TYPE_FACEBOOK", 4), "Instagram": ("TYPE_INSTAGRAM", 18),
}
ACTIVITY = ("TYPE_ACTIVITY_OPPORTUNITY", 27)
APPOINTMENT_STATUSES = ("new", "confirmed", "showed", "noshow", "cancelled")
DAY_MS = 86_400_000


def seed_crm(world: World, loc: Location, index: int) -> None:
    rng = random.Random(f"{world.config.seed}/crm/{index}")
    cfg = world.config
    n_opps = cfg.per_location(cfg.opportunities_per_location, 5)[index]
    n_convs = cfg.per_location(cfg.conversations_per_location, 10)[index]
    contact_ids = sorted(loc.contacts.truth)
    pipelines = [make_pipeline(rng, loc.id, name) for name in ("Sales", "Onboarding")]
    opp_fields = [f for f in loc.custom_fields if f["model"] == "opportunity"]
    opps = IndexedRecords(OPP_SORTS)
    opps.seed([make_opportunity(rng, loc, pipelines, opp_fields, contact_ids) for _ in range(n_opps)])
    conversations: dict[str, Record] = {}
    messages: dict[str, Record] = {}
    channels = list(CHANNELS)
    for i in range(n_convs):
        conv = make_conversation(rng, loc.id, contact_ids[i % len(contact_ids)] if contact_ids else data.make_id(rng))
        conversations[conv["id"]] = conv
        for j in range(cfg.messages_per_conversation):
            channel = channels[(i + j) % len(channels)]
            activity = j == cfg.messages_per_conversation - 1 and i % 7 == 0
            stamp = data.ANCHOR_MS - data.below(rng, 365 * DAY_MS)
            msg = make_message(rng, conv, channel, stamp, activity)
            messages[msg["id"]] = msg
            conv["lastMessageDate"] = max(conv["lastMessageDate"], stamp)
    calendars = [make_calendar(rng, loc.id, f"Calendar {k + 1}") for k in range(cfg.calendars_per_location)]
    events: dict[str, Record] = {}
    offset = data.OFFSETS[loc.record["timezone"]]
    now = data.now_ms()
    for calendar in calendars:
        for _ in range(cfg.appointments_per_calendar):
            start = now + (data.below(rng, 801) - 400) * DAY_MS // 2 + data.below(rng, 24) * 3_600_000
            event = make_event(rng, loc.id, calendar["id"], contact_ids, start, offset)
            events[event["id"]] = event
    loc.extra.update(opportunities=opps, pipelines=pipelines, conversations=conversations, messages=messages,
                     calendars=calendars, events=events)
    seed_tasks_notes(world, loc, index)
    seed_objects(world, loc, index)
    seed_account_lists(world, loc, index)
    seed_revenue(world, loc, index)


def make_pipeline(rng: random.Random, location_id: str, name: str) -> Record:
    stages = [{"id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "name": stage, "position": pos,
               "showInFunnel": True, "showInPieChart": True}
              for pos, stage in enumerate(("New", "Contacted", "Qualified", "Proposal", "Closed"))]
    return {"id": data.make_id(rng), "name": name, "stages": stages, "showInFunnel": True, "showInPieChart": True,
            "locationId": location_id}


def make_opportunity(rng: random.Random, loc: Location, pipelines: list[Record], fields: list[Record],
                     contact_ids: list[str]) -> Record:
    pipeline = data.pick(rng, pipelines)
    created = data.ANCHOR_MS - data.below(rng, data.HISTORY_MS)
    updated = created + data.below(rng, min(60 * DAY_MS, data.ANCHOR_MS - created) + 1)
    contact_id = data.pick(rng, contact_ids) if contact_ids else data.make_id(rng)
    chosen = data.sample(rng, fields, data.below(rng, len(fields) + 1))
    return {
        "id": data.make_id(rng), "name": f"Deal {1 + data.below(rng, 10**6)}",
        "monetaryValue": round(rng.uniform(100, 20_000), 2), "pipelineId": pipeline["id"],
        "pipelineStageId": data.pick(rng, pipeline["stages"])["id"], "assignedTo": data.pick(rng, loc.users)["id"],
        "status": data.pick(rng, STATUSES), "source": data.pick(rng, data.SOURCES), "lostReasonId": None,
        "contactId": contact_id, "locationId": loc.id,
        "contact": {"id": contact_id, "name": "Contact Name", "companyName": "Acme", "email": "c@example.com",
                    "phone": "+15550000000", "tags": data.sample(rng, data.TAGS, data.below(rng, 4))},
        "customFields": [{"id": f["id"], "fieldValue": data.custom_value(rng, f["dataType"], f["picklistOptions"])}
                         for f in chosen],
        "followers": [], "indexVersion": 1, "createdAt": data.iso_ms(created), "updatedAt": data.iso_ms(updated),
        "lastStatusChangeAt": data.iso_ms(updated), "lastStageChangeAt": data.iso_ms(updated),
        "lastActionDate": data.iso_ms(updated),
    }


def make_conversation(rng: random.Random, location_id: str, contact_id: str) -> Record:
    added = data.ANCHOR_MS - (365 * DAY_MS + data.below(rng, data.HISTORY_MS - 365 * DAY_MS))
    return {"id": data.make_id(rng), "contactId": contact_id, "locationId": location_id, "lastMessageBody": "",
            "lastMessageType": "TYPE_SMS", "type": "TYPE_PHONE", "unreadCount": data.below(rng, 4),
            "fullName": "Contact Name", "contactName": "contact name", "email": "c@example.com",
            "phone": "+15550000000", "inbox": True, "starred": False, "deleted": False, "tags": [],
            "dateAdded": added, "dateUpdated": added, "lastMessageDate": added, "assignedTo": None}


def make_message(rng: random.Random, conv: Record, channel: str, stamp: int, activity: bool = False) -> Record:
    message_type, type_number = ACTIVITY if activity else CHANNELS[channel]
    message = {
        "id": data.make_id(rng), "type": type_number, "messageType": message_type, "locationId": conv["locationId"],
        "contactId": conv["contactId"], "conversationId": conv["id"], "dateAdded": data.iso_ms(stamp),
        "dateUpdated": data.iso_ms(stamp), "body": f"{channel} message {1 + data.below(rng, 10**6)}",
        "direction": data.pick(rng, ("inbound", "outbound")), "status": "delivered", "contentType": "text/plain",
        "attachments": [], "source": data.pick(rng, ("app", "workflow", "api")), "userId": None,
        "meta": {"callDuration": 5 + data.below(rng, 596), "callStatus": "completed"} if channel == "Call" else {},
    }
    if channel == "Email" and not activity:
        message["meta"] = {"email": {"messageIds": [data.make_id(rng)]}}
        message["subject"] = "Hello"
    return message


def make_calendar(rng: random.Random, location_id: str, name: str) -> Record:
    return {"id": data.make_id(rng), "locationId": location_id, "name": name, "description": "", "slug": name.lower(),
            "isActive": True, "calendarType": "round_robin", "eventType": "RoundRobin_OptimizeForAvailability",
            "slotDuration": 30, "teamMembers": [], "groupId": None}


def make_event(rng: random.Random, location_id: str, calendar_id: str, contact_ids: list[str], start: int,
               offset: float) -> Record:
    added = start - (1 + data.below(rng, 30)) * DAY_MS
    return {"id": data.make_id(rng), "title": "Consultation", "calendarId": calendar_id, "locationId": location_id,
            "contactId": data.pick(rng, contact_ids) if contact_ids else None, "groupId": None,
            "appointmentStatus": data.pick(rng, APPOINTMENT_STATUSES[:4]), "assignedUserId": None, "users": [],
            "notes": "", "address": "Zoom", "isRecurring": False, "startTime": data.iso_offset(start, offset),
            "endTime": data.iso_offset(start + 1_800_000, offset), "dateAdded": data.iso_offset(added, offset),
            "dateUpdated": data.iso_offset(added, offset)}


# -- mutations (all stamped now) -------------------------------------------------------------

def move_opportunities(world: World, location_id: str, n: int) -> list[str]:
    with world.lock:
        loc = world.locations[location_id]
        opps: IndexedRecords = loc.extra["opportunities"]
        ids = world.rng.sample(sorted(opps.truth), min(n, len(opps.truth)))
        for opp_id in ids:
            record = dict(opps.truth[opp_id])
            pipeline = next(p for p in loc.extra["pipelines"] if p["id"] == record["pipelineId"])
            record["pipelineStageId"] = data.pick(world.rng, pipeline["stages"])["id"]
            record["status"] = data.pick(world.rng, STATUSES)
            stamp = data.iso_ms(max(data.now_ms(), data.ms_of(record["updatedAt"]) + 1))
            record.update(updatedAt=stamp, lastStageChangeAt=stamp, lastStatusChangeAt=stamp)
            opps.write(opp_id, record, world.lag())
        return ids


def add_messages(world: World, location_id: str, channels: list[str]) -> list[str]:
    """One new message per channel, each in an existing conversation (which moves to the top)."""
    with world.lock:
        loc = world.locations[location_id]
        conversations = loc.extra["conversations"]
        ids = []
        for channel in channels:
            conv = conversations[data.pick(world.rng, sorted(conversations))]
            stamp = max(data.now_ms(), conv["lastMessageDate"] + 1)
            msg = make_message(world.rng, conv, channel, stamp)
            loc.extra["messages"][msg["id"]] = msg
            loc.extra.pop("_export_cache", None)
            conversations[conv["id"]] = {**conv, "lastMessageDate": stamp, "dateUpdated": stamp,
                                         "lastMessageType": msg["messageType"], "lastMessageBody": msg["body"]}
            ids.append(msg["id"])
        return ids


def read_messages(world: World, location_id: str, n: int) -> list[str]:
    """`n` of the oldest messages were read just now: their status and `dateUpdated` change, their
    `dateAdded` does not (what an export filtered by one or the other tells apart)."""
    with world.lock:
        loc = world.locations[location_id]
        messages = loc.extra["messages"]
        ids = sorted(messages, key=lambda m: (messages[m]["dateAdded"], m))[:n]
        for message_id in ids:
            stamp = max(data.now_ms(), data.ms_of(messages[message_id]["dateUpdated"]) + 1)
            messages[message_id] = {**messages[message_id], "status": "read", "dateUpdated": data.iso_ms(stamp)}
        loc.extra.pop("_export_cache", None)
        return ids


def reschedule_appointments(world: World, location_id: str, n: int, cancel: int) -> list[str]:
    with world.lock:
        loc = world.locations[location_id]
        events = loc.extra["events"]
        offset = data.OFFSETS[loc.record["timezone"]]
        now = data.now_ms()
        upcoming = sorted(e for e, ev in events.items() if data.ms_of(ev["startTime"]) > now)
        ids = world.rng.sample(upcoming, min(n + cancel, len(upcoming)))
        for k, event_id in enumerate(ids):
            event = dict(events[event_id])
            if k < n:
                start = data.ms_of(event["startTime"]) + DAY_MS
                event.update(startTime=data.iso_offset(start, offset),
                             endTime=data.iso_offset(start + 1_800_000, offset))
            else:
                event["appointmentStatus"] = "cancelled"
            event["dateUpdated"] = data.iso_offset(now, offset)
            events[event_id] = event
        return ids


def add_calendar(world: World, location_id: str, appointments: int) -> tuple[str, list[str]]:
    with world.lock:
        loc = world.locations[location_id]
        calendar = make_calendar(world.rng, location_id, f"Calendar {len(loc.extra['calendars']) + 1}")
        loc.extra["calendars"].append(calendar)
        offset = data.OFFSETS[loc.record["timezone"]]
        ids = []
        for k in range(appointments):
            event = make_event(world.rng, location_id, calendar["id"], sorted(loc.contacts.truth)[:50],
                               data.now_ms() + (k - appointments // 2) * DAY_MS, offset)
            loc.extra["events"][event["id"]] = event
            ids.append(event["id"])
        return calendar["id"], ids


def iter_values(loc: Location, key: str) -> list[Any]:
    value = loc.extra[key]
    if isinstance(value, IndexedRecords):
        return list(value.truth.values())
    if isinstance(value, dict):
        return list(value.values())
    return list(value)


def edit_appointment(world: World, location_id: str, event_id: str, changes: dict[str, Any]) -> Record:
    """Apply `changes` to one appointment, whatever its date (a correction of an old one)."""
    with world.lock:
        loc = world.locations[location_id]
        event = {**loc.extra["events"][event_id], **changes}
        event["dateUpdated"] = data.iso_offset(data.now_ms(), data.OFFSETS[loc.record["timezone"]])
        loc.extra["events"][event_id] = event
        return dict(event)


def delete_appointment(world: World, location_id: str, event_id: str) -> Record:
    """Remove an appointment; returns it as it was (a webhook needs it)."""
    with world.lock:
        return dict(world.locations[location_id].extra["events"].pop(event_id))


def tie_conversations(world: World, location_id: str, first: int, count: int) -> list[str]:
    """Give `count` conversations the same `lastMessageDate` to the millisecond: those at
    positions [first, first + count) of the newest-first order all take the value of the one at
    `first` (bulk sends do this). Returns their ids, newest-first order."""
    with world.lock:
        conversations = world.locations[location_id].extra["conversations"]
        ordered = sorted(conversations.values(), key=lambda c: (c["lastMessageDate"], c["id"]), reverse=True)
        chosen = ordered[first:first + count]
        stamp = chosen[0]["lastMessageDate"]
        for conv in chosen:
            conversations[conv["id"]] = {**conv, "lastMessageDate": stamp}
        return [conv["id"] for conv in chosen]
