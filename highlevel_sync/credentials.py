"""Which credentials a run uses and which locations they reach: the source's resolver, so the CLI,
`run_sync` and a plain `dlt.pipeline(...).run(highlevel_source())` agree (sources/highlevel/credentials.py)."""

from sources.highlevel.credentials import Credentials, installed_locations, oauth_app, resolve_credentials

__all__ = ["Credentials", "installed_locations", "oauth_app", "resolve_credentials"]
