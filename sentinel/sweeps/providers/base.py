"""The provider interface: list a sweep's targets, and say how git fetches one.

A provider is built from a ``[[sweeps]]`` entry's ``options`` (plain data, no secret:
credentials are named by environment variable, e.g. ``token_env``) and is rebuilt
wherever a target is worked on (a Celery worker on another machine included), so
nothing secret travels in a task or lands in the database."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from sentinel.sweeps.targets import Target


class Provider(Protocol):
    name: str  # "github", "gitlab", "local", "file", "registry", "kube"

    def targets(self) -> Iterator[Target]:
        """Every target to sweep, skipping what configuration excludes (archived, forks).
        Raises ProviderError when the listing itself fails (bad token, unreachable API);
        a target that is listed but broken is the sweep's to record, not this."""
        ...

    def fetch_url(self, target: Target) -> str:
        """For a git target: the URL to fetch, with credentials in its userinfo when the
        provider has them (used for one fetch, never stored or logged), or the local
        path. For other kinds: ``target.location``."""
        ...
