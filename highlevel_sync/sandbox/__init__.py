"""A faithful local HighLevel API v2 with seeded data: for the demo, the tests and the benchmark.

Same paths, `Version` headers, paging limits, rate limits and headers, token scoping, search-index
lag and failure modes as the real API, and never a convenience the real API lacks.
"""

from .config import REALISTIC_LATENCY, SandboxConfig
from .server import Sandbox, serve

__all__ = ["REALISTIC_LATENCY", "Sandbox", "SandboxConfig", "serve"]
