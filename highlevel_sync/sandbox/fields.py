"""Custom-field definition changes: a user adding a field in HighLevel's settings.

The new field is defined at once (`GET /locations/{id}/customFields` lists it); records get values
for it only when edited (`Sandbox.edit_contact`).
"""

from __future__ import annotations

from . import data
from .index import Record
from .world import World


def add_custom_field(world: World, location_id: str, name: str, data_type: str, model: str = "contact",
                     options: tuple[str, ...] = ()) -> Record:
    """Define a field named `name` (fieldKey `<model>.<name in snake case>`); returns its definition."""
    with world.lock:
        loc = world.locations[location_id]
        field = data._field(world.rng, location_id, name, data_type, options, len(loc.fields_of(model)), model)
        loc.custom_fields.append(field)
        return dict(field)
