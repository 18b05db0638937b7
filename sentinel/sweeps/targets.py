"""What a sweep works through: one Target per repository, image or cluster a provider
lists. A target is plain data (it travels to Celery workers as JSON); its ``key`` names
it across sweeps, so the tips scanned last time and the findings it produced are found
again however the provider spells it next time."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

from sentinel.errors import SourceError

Kind = Literal["git", "image", "cluster"]
KINDS: tuple[Kind, ...] = ("git", "image", "cluster")


class ProviderError(SourceError):
    """A provider that cannot list its targets (one line, no credential in it)."""


@dataclass(frozen=True)
class Target:
    kind: Kind
    name: str  # what people read: "acme/api", "registry:5000/app:1.2", "prod"
    # git: a clone URL without userinfo, or a local repository's absolute path;
    # image: an image reference; cluster: a kubeconfig context name
    location: str
    # per-target facts the scan needs and a person may want to see (default branch,
    # archived, fork, kubeconfig path, namespaces, web URL); never a credential
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        """Stable across sweeps and providers: kind plus the normalised location."""
        loc = self.location
        if self.kind == "git" and "://" in loc:
            from sentinel.sweeps.mirrors import normalise

            loc = normalise(loc)
        digest = hashlib.sha256(f"{self.kind}\0{loc}".encode()).hexdigest()[:32]
        return f"{self.kind}:{digest}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "location": self.location, "meta": self.meta}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Target:
        kind = doc["kind"]
        if kind not in KINDS:
            raise ValueError(f"unknown target kind {kind!r}")
        return cls(kind, str(doc["name"]), str(doc["location"]), dict(doc.get("meta") or {}))
