"""How `POST /opportunities/search` answers: switchable, because nobody has confirmed it.

CONTRACT.md §9 leaves open whether the advanced opportunity search takes update-time filters for
a given account, and accounts do differ: the route has answered 401 "not yet supported by the IAM
Service", 405 `Cannot POST`, and validation errors. A client must survive every such answer by
falling back to `GET /opportunities/search`, so the sandbox can give each one on demand. Like
`faults.py` this is control-API only: a switched answer looks exactly like a real one, and the
default ("honour") is the behaviour `SandboxConfig.opportunity_update_field` describes.
"""

from __future__ import annotations

import threading

# answer -> what the route then does
ANSWERS: dict[str, str] = {
    "honour": "filters and sorts as SandboxConfig.opportunity_update_field says",
    "405": "405 Cannot POST /opportunities/search (the route does not exist for this account)",
    "404": "404 Cannot POST /opportunities/search",
    "400": "400 Bad Request naming the filter or sort field",
    "422": "422 validation errors: property filters / sort should not exist",
    "403": "403 Forbidden resource",
    "empty": "200 with an empty body",
    "non_json": "200 with an HTML page",
    "ignore_filter": "200 with rows that ignore filters and sort (newest created first)",
}


class OpportunitySearchAnswers:
    """The answer of `POST /opportunities/search`, for all locations or one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        """Every location back to "honour"."""
        with self._lock:
            self._default = "honour"
            self._by_location: dict[str, str] = {}

    def set(self, answer: str, location_id: str | None = None) -> None:
        """From now on the route answers `answer` (a key of ANSWERS), for `location_id` or everyone."""
        if answer not in ANSWERS:
            raise ValueError(f"unknown opportunity search answer {answer!r}; choose from {', '.join(ANSWERS)}")
        with self._lock:
            if location_id is None:
                self._default = answer
                self._by_location.clear()
            else:
                self._by_location[location_id] = answer

    def answer_for(self, location_id: str | None) -> str:
        with self._lock:
            if location_id is not None and location_id in self._by_location:
                return self._by_location[location_id]
            return self._default
