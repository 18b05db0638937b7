"""Vault / OpenBao KV version 2 as a :class:`rotators.base.SecretStore`, through hvac.

Paths: the first segment is the mount, the rest the secret's path in it. Both the
logical form ``kv/app/db`` and the API form ``kv/data/app/db`` (the issue's template
``kv/data/{repo}/{rule}``) name the secret ``app/db`` on mount ``kv``: a ``data``
segment right after the mount is always taken as the API's, so a secret whose own
path starts with ``data/`` must be written ``kv/data/data/...``. A mount whose path has
a slash in it (``team/kv``) is given as the option ``mount``; paths that start with it
are read against it, and so are paths that do not (they are then relative to it).

KV v2 has no staging labels, so the pending version is a secret of its own beside the
target: ``<path>.sentinel-pending/<token>`` (``token`` being the rotation's id), written
with ``cas=0`` (create only). Its ``custom_metadata`` names the rotation, the finding
and the rule, and ``sentinel-base-version``: the target's version read just before, the
check-and-set value for ``promote``. The metadata is written before the value, so a
crash between the two leaves an empty entry that the next ``stage`` fills.

``promote`` writes the value as a new version of the target with ``cas=<base>``: if
another writer changed the target since ``stage``, the server refuses and ``promote``
raises :class:`Blocked` (the target keeps the other writer's value; a person decides).
It then merges ``sentinel-rotation``, ``sentinel-version``, ``sentinel-finding`` and
``sentinel-rule`` into the target's ``custom_metadata`` (PATCH: the target's other
settings and metadata are kept), and deletes the pending secret. Earlier versions are
never deleted or destroyed (the mount's ``max_versions`` still applies). Retried after a
crash, it finds its own write (the target's metadata, or the version after the base
holding the staged value) and does not write again.

Options: those of :mod:`rotators.vaultauth` (url, namespace, auth, TLS), and ``mount``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rotators.base import Blocked, RotationError
from rotators.vaultauth import VaultAuth, VaultSession, first_error

PENDING = ".sentinel-pending"
META_PREFIX = "sentinel-"
MAX_META_VALUE = 512  # KV v2's limit for one custom_metadata value


def _clean(value: str) -> str:
    return " ".join(str(value).split())[:MAX_META_VALUE]


class VaultKVStore:
    kind = "vault-kv"

    def __init__(self, session: VaultSession, *, mount: str | None = None) -> None:
        self.session = session
        self.mount = mount.strip("/") if mount else None

    # -- paths ------------------------------------------------------------------------

    def split(self, path: str) -> tuple[str, str]:
        """(mount, secret path) for ``path`` as the module's docstring reads it."""
        p = path.strip("/")
        if self.mount:
            if p == self.mount or p.startswith(self.mount + "/"):
                p = p[len(self.mount) :].strip("/")
            if p.startswith("data/"):
                p = p[len("data/") :]
            mount, rel = self.mount, p
        else:
            mount, _, rel = p.partition("/")
            if rel.startswith("data/"):
                rel = rel[len("data/") :]
        if not mount or not rel or rel.endswith("/"):
            raise RotationError(f"vault-kv: {path!r} names no secret (mount/path)")
        if PENDING in rel:
            raise RotationError(f"vault-kv: {path!r} is a pending secret's path")
        return mount, rel

    @staticmethod
    def pending_path(rel: str, token: str) -> str:
        if not token or "/" in token:
            raise RotationError("vault-kv: a rotation token is one non-empty path segment")
        return f"{rel}{PENDING}/{token}"

    def describe(self, path: str) -> str:
        mount, rel = self.split(path)
        ns = f" (namespace {self.session.auth.namespace})" if self.session.auth.namespace else ""
        return f"vault kv {mount}/{rel} at {self.session.auth.url}{ns}"

    def identity(self) -> str:
        return self.session.identity()

    # -- hvac calls -------------------------------------------------------------------

    def _read(self, mount: str, rel: str, version: int | None = None) -> dict[str, Any] | None:
        """The version's ``{"data", "metadata"}``, or None if absent or deleted."""
        import hvac.exceptions as hx

        def read(c: Any) -> dict[str, Any] | None:
            try:
                r = c.secrets.kv.v2.read_secret_version(
                    path=rel, version=version, mount_point=mount, raise_on_deleted_version=False
                )
            except hx.InvalidPath:
                return None
            body: dict[str, Any] | None = r.get("data")
            if not body or body.get("data") is None:
                return None
            return body

        return self.session.call(read, f"read {mount}/{rel}")

    def _metadata(self, mount: str, rel: str) -> dict[str, Any] | None:
        import hvac.exceptions as hx

        def read(c: Any) -> dict[str, Any] | None:
            try:
                r = c.secrets.kv.v2.read_secret_metadata(path=rel, mount_point=mount)
            except hx.InvalidPath:
                return None
            data: dict[str, Any] = r["data"]
            return data

        return self.session.call(read, f"read metadata of {mount}/{rel}")

    def _write(self, mount: str, rel: str, value: Mapping[str, str], cas: int) -> int | None:
        """The new version, or None when check-and-set refused the write."""
        import hvac.exceptions as hx

        try:
            r = self.session.call(
                lambda c: c.secrets.kv.v2.create_or_update_secret(
                    path=rel, secret=dict(value), cas=cas, mount_point=mount
                ),
                f"write {mount}/{rel}",
                reraise=(hx.InvalidRequest,),
            )
        except hx.InvalidRequest as exc:
            if "check-and-set" in str(exc):
                return None
            raise RotationError(
                f"vault-kv: write {mount}/{rel} refused: {first_error(exc)}"
            ) from None
        return int(r["data"]["version"])

    def _put_metadata(
        self, mount: str, rel: str, custom: Mapping[str, str], *, merge: bool
    ) -> None:
        """PATCH (merge into what is there, other settings kept) or POST (a new entry)."""
        url = f"/v1/{mount}/metadata/{rel}"
        body = {"custom_metadata": dict(custom)}
        if merge:
            self.session.call(
                lambda c: c.adapter.request(
                    "PATCH",
                    url,
                    json=body,
                    headers={"Content-Type": "application/merge-patch+json"},
                ),
                f"patch metadata of {mount}/{rel}",
            )
        else:
            self.session.call(
                lambda c: c.adapter.post(url, json=body), f"write metadata of {mount}/{rel}"
            )

    def _delete(self, mount: str, rel: str) -> None:
        self.session.call(
            lambda c: c.secrets.kv.v2.delete_metadata_and_all_versions(path=rel, mount_point=mount),
            f"delete {mount}/{rel}",
        )

    # -- the protocol -----------------------------------------------------------------

    def stage(
        self, path: str, value: Mapping[str, str], *, token: str, metadata: Mapping[str, str]
    ) -> str:
        mount, rel = self.split(path)
        pending = self.pending_path(rel, token)
        found = self._read(mount, pending)
        if found is not None:
            return f"{mount}/{pending}@{found['metadata']['version']}"
        target = self._metadata(mount, rel)
        base = int(target["current_version"]) if target else 0
        custom = {f"{META_PREFIX}{k}": _clean(v) for k, v in metadata.items()}
        custom[f"{META_PREFIX}rotation"] = _clean(token)
        custom[f"{META_PREFIX}base-version"] = str(base)
        self._put_metadata(mount, pending, custom, merge=False)
        version = self._write(mount, pending, value, cas=0)
        if version is None:  # another attempt created it in between: that one stands
            found = self._read(mount, pending)
            if found is None:
                raise RotationError(f"vault-kv: {mount}/{pending} could not be created")
            version = int(found["metadata"]["version"])
        return f"{mount}/{pending}@{version}"

    def read_staged(self, path: str, *, token: str) -> Mapping[str, str] | None:
        mount, rel = self.split(path)
        found = self._read(mount, self.pending_path(rel, token))
        return None if found is None else dict(found["data"])

    def promote(self, path: str, *, token: str) -> None:
        mount, rel = self.split(path)
        pending = self.pending_path(rel, token)
        target = self._metadata(mount, rel)
        custom_now: dict[str, str] = dict((target or {}).get("custom_metadata") or {})
        staged = self._read(mount, pending)
        if custom_now.get(f"{META_PREFIX}rotation") == token and custom_now.get(
            f"{META_PREFIX}version"
        ):
            if staged is not None or self._metadata(mount, pending) is not None:
                self._delete(mount, pending)  # promoted already; the clean-up was cut short
            return
        if staged is None:
            raise RotationError(f"vault-kv: no pending version of {mount}/{rel} for this rotation")
        pmeta = self._metadata(mount, pending) or {}
        pcustom: dict[str, str] = dict(pmeta.get("custom_metadata") or {})
        try:
            base = int(pcustom[f"{META_PREFIX}base-version"])
        except (KeyError, ValueError):
            raise RotationError(
                f"vault-kv: {mount}/{pending} has no sentinel-base-version metadata"
            ) from None
        value: dict[str, str] = dict(staged["data"])
        version = self._own_write(mount, rel, base, value, target)
        if version is None:
            version = self._write_cas(mount, rel, base, value)
        custom = {
            k: v
            for k, v in pcustom.items()
            if k.startswith(META_PREFIX) and k != f"{META_PREFIX}base-version"
        }
        custom[f"{META_PREFIX}rotation"] = _clean(token)
        custom[f"{META_PREFIX}version"] = str(version)
        self._put_metadata(mount, rel, custom, merge=True)
        self._delete(mount, pending)

    def _own_write(
        self,
        mount: str,
        rel: str,
        base: int,
        value: Mapping[str, str],
        target: Mapping[str, Any] | None,
    ) -> int | None:
        """The version this rotation already wrote after ``base`` (a promote cut short
        after its write), or None if the target is still at ``base``. Raises Blocked
        when another writer's version came after ``base``."""
        current = int(target["current_version"]) if target else 0
        if current == base:
            return None
        mine = self._read(mount, rel, version=base + 1)
        if mine is not None and mine["data"] == dict(value):
            return base + 1
        raise Blocked(
            f"vault-kv: {mount}/{rel} changed since the rotation staged its replacement "
            f"(version {base} then, {current} now): another writer changed it; "
            "the target keeps that writer's value and the replacement stays pending"
        )

    def _write_cas(self, mount: str, rel: str, base: int, value: Mapping[str, str]) -> int:
        version = self._write(mount, rel, value, cas=base)
        if version is not None:
            return version
        # check-and-set refused: the target moved between the read and the write
        target = self._metadata(mount, rel)
        version = self._own_write(mount, rel, base, value, target)
        if version is None:
            raise Blocked(
                f"vault-kv: {mount}/{rel}: check-and-set refused at version {base}: "
                "another writer changed it"
            )
        return version

    def discard(self, path: str, *, token: str) -> None:
        mount, rel = self.split(path)
        self._delete(mount, self.pending_path(rel, token))

    def read_current(self, path: str) -> Mapping[str, str] | None:
        mount, rel = self.split(path)
        found = self._read(mount, rel)
        return None if found is None else dict(found["data"])


def build(options: Mapping[str, Any]) -> VaultKVStore:
    """A store from its TOML table (see :mod:`rotators.vaultauth` for the keys)."""
    mount = options.get("mount")
    auth_options = {k: v for k, v in options.items() if k not in ("mount", "store")}
    return VaultKVStore(VaultSession(VaultAuth(auth_options)), mount=str(mount) if mount else None)
