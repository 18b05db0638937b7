"""One authenticated hvac client for the Vault/OpenBao store and providers, built from
a TOML table, and the mapping of hvac's errors to the rotation's.

Options (every secret comes from an environment variable or a file, never inline):

``url``                       the server, e.g. ``https://vault.example.org:8200`` (required)
``namespace``                 sent as ``X-Vault-Namespace`` (Vault Enterprise / OpenBao namespaces)
``auth``                      ``"token"`` (default), ``"approle"`` or ``"kubernetes"``
``token_env`` / ``token_file``              for ``auth = "token"`` (one of them)
``role_id`` / ``role_id_env`` / ``role_id_file``   for ``auth = "approle"`` (a role id is
                              an identifier, so it may be inline)
``secret_id_env`` / ``secret_id_file``      for ``auth = "approle"``
``approle_mount``             default ``"approle"``
``kubernetes_role``           for ``auth = "kubernetes"`` (required there)
``kubernetes_token_file``     default ``/var/run/secrets/kubernetes.io/serviceaccount/token``
``kubernetes_mount``          default ``"kubernetes"``
``tls_verify``                default true; false turns certificate checks off
``ca_cert``                   a CA bundle file to check the server's certificate against
``client_cert`` / ``client_key``   files, for servers that want TLS client certificates
``timeout``                   seconds per request, default 30

AppRole and Kubernetes logins happen at the first call, not in ``build``, and again
when the server answers 403 to a token that has expired since (once per call).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from rotators.base import Retryable, RotationError

AUTH_METHODS = ("token", "approle", "kubernetes")
DEFAULT_K8S_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
INLINE_SECRETS = ("token", "secret_id", "password")

T = TypeVar("T")


class ConfigError(ValueError):
    """The options table is wrong; the message names the key, never a value."""


def _secret_from(options: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    """``<name>_env`` (an environment variable's name) or ``<name>_file`` (a path)."""
    env = options.get(f"{name}_env")
    path = options.get(f"{name}_file")
    if env and path:
        raise ConfigError(f"vault: give {name}_env or {name}_file, not both")
    if env:
        value = os.environ.get(str(env), "").strip()
        if not value:
            raise ConfigError(f"vault: environment variable {env} ({name}_env) is empty or unset")
        return value
    if path:
        try:
            value = Path(str(path)).expanduser().read_text().strip()
        except OSError as exc:
            raise ConfigError(f"vault: cannot read {name}_file {path}: {exc.strerror}") from None
        if not value:
            raise ConfigError(f"vault: {name}_file {path} is empty")
        return value
    if required:
        raise ConfigError(f"vault: {name}_env or {name}_file is required")
    return None


class VaultAuth:
    """What ``build(options)`` parsed: how to reach and log in to the server."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        for key in INLINE_SECRETS:
            if key in options:
                raise ConfigError(f"vault: {key} must not be inline; use {key}_env or {key}_file")
        url = options.get("url")
        if not url or not isinstance(url, str):
            raise ConfigError("vault: url is required")
        self.url = url.rstrip("/")
        self.namespace: str | None = str(options["namespace"]) if options.get("namespace") else None
        self.method = str(options.get("auth", "token"))
        if self.method not in AUTH_METHODS:
            raise ConfigError(f"vault: auth must be one of {', '.join(AUTH_METHODS)}")
        self.timeout = int(options.get("timeout", 30))
        verify: bool | str = bool(options.get("tls_verify", True))
        if options.get("ca_cert"):
            if not verify:
                raise ConfigError("vault: ca_cert and tls_verify = false contradict each other")
            verify = str(options["ca_cert"])
        self.verify = verify
        cert_file, key_file = options.get("client_cert"), options.get("client_key")
        if bool(cert_file) != bool(key_file):
            raise ConfigError("vault: client_cert and client_key go together")
        self.cert: tuple[str, str] | None = (
            (str(cert_file), str(key_file)) if cert_file and key_file else None
        )
        self.mount = ""
        self.role = ""
        self.token_file: str | None = None
        if self.method == "token":
            # read now: a missing variable is a configuration error, found at start
            self._token = _secret_from(options, "token")
            self.source = (
                f"token from ${options['token_env']}"
                if options.get("token_env")
                else f"token from {options.get('token_file')}"
            )
        elif self.method == "approle":
            self.mount = str(options.get("approle_mount", "approle"))
            role_id = options.get("role_id") or _secret_from(options, "role_id")
            assert role_id is not None
            self.role = str(role_id)
            self._secret_id = _secret_from(options, "secret_id")
            self.source = f"approle at auth/{self.mount} (role id {self.role})"
        else:
            self.mount = str(options.get("kubernetes_mount", "kubernetes"))
            role = options.get("kubernetes_role")
            if not role:
                raise ConfigError("vault: kubernetes_role is required with auth = kubernetes")
            self.role = str(role)
            self.token_file = str(options.get("kubernetes_token_file", DEFAULT_K8S_TOKEN))
            self.source = f"kubernetes role {self.role} at auth/{self.mount}"

    def new_client(self, token: str | None = None) -> Any:
        """An unauthenticated client, or one holding ``token``."""
        import hvac

        return hvac.Client(
            url=self.url,
            token=token,
            namespace=self.namespace,
            verify=self.verify,
            cert=self.cert,
            timeout=self.timeout,
        )

    def login(self, client: Any) -> None:
        """Give ``client`` a token by this configuration's method."""
        if self.method == "token":
            client.token = self._token
        elif self.method == "approle":
            client.auth.approle.login(
                role_id=self.role, secret_id=self._secret_id, mount_point=self.mount
            )
        else:
            assert self.token_file is not None
            try:
                jwt = Path(self.token_file).read_text().strip()
            except OSError as exc:
                raise RotationError(
                    f"vault: cannot read the service account token {self.token_file}: {exc.strerror}"
                ) from None
            client.auth.kubernetes.login(role=self.role, jwt=jwt, mount_point=self.mount)


class VaultSession:
    """A client that logs in when first used and again once after a 403 (an expired
    AppRole or Kubernetes token); every call goes through :meth:`call`."""

    def __init__(self, auth: VaultAuth) -> None:
        self.auth = auth
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            client = self.auth.new_client()
            guard(lambda: self.auth.login(client), f"{self.auth.method} login")
            self._client = client
        return self._client

    def call(
        self,
        fn: Callable[[Any], T],
        what: str,
        *,
        reraise: tuple[type[BaseException], ...] = (),
    ) -> T:
        """``fn(client)`` through :func:`guard`; hvac errors in ``reraise`` pass through."""
        import hvac.exceptions as hx

        client = self.client
        try:
            return guard(lambda: fn(client), what, reraise=(hx.Forbidden, *reraise))
        except hx.Forbidden:
            if self.auth.method == "token" or hx.Forbidden in reraise:
                raise RotationError(f"vault: {what}: permission denied") from None
        self._client = None  # log in again, once
        client = self.client
        return guard(lambda: fn(client), what, reraise=reraise)

    def lookup_self(self) -> dict[str, Any]:
        data: dict[str, Any] = self.call(lambda c: c.auth.token.lookup_self(), "lookup-self")[
            "data"
        ]
        return data

    def identity(self) -> str:
        try:
            data = self.lookup_self()
        except RotationError:
            return f"{self.auth.url} ({self.auth.source})"
        name = data.get("display_name") or "?"
        accessor = data.get("accessor") or "?"
        ns = f", namespace {self.auth.namespace}" if self.auth.namespace else ""
        return f"{name} (accessor {accessor}{ns}) at {self.auth.url}"


# The server's own words for a KV mount that is still upgrading to v2 ("This backend will
# be unavailable for a brief period and will resume service shortly"): worth a retry.
_TRANSIENT = "Upgrading from non-versioned to versioned data"


def first_error(exc: Exception) -> str:
    """The server's first error line (they name paths and reasons, never a value)."""
    errors = getattr(exc, "errors", None)
    text = str(errors[0]) if errors else type(exc).__name__
    return " ".join(text.split())[:200]


def guard(fn: Callable[[], T], what: str, *, reraise: tuple[type[BaseException], ...] = ()) -> T:
    """Run one hvac call: down, sealed, 5xx, throttled or unreachable -> Retryable; any
    other refusal -> RotationError. Exceptions in ``reraise`` pass through untouched."""
    import hvac.exceptions as hx
    import requests

    try:
        return fn()
    except reraise:
        raise
    except (hx.VaultDown, hx.VaultNotInitialized) as exc:
        raise Retryable(
            f"vault: {what}: the server is sealed or down ({first_error(exc)})"
        ) from None
    except (hx.InternalServerError, hx.BadGateway, hx.RateLimitExceeded) as exc:
        raise Retryable(f"vault: {what}: {first_error(exc)}") from None
    except hx.UnexpectedError as exc:  # 5xx hvac has no class for (504, ...)
        raise Retryable(f"vault: {what}: unexpected answer ({first_error(exc)})") from None
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise Retryable(f"vault: {what}: cannot reach the server ({type(exc).__name__})") from None
    except hx.Forbidden:
        raise RotationError(f"vault: {what}: permission denied") from None
    except hx.VaultError as exc:
        reason = first_error(exc)
        if _TRANSIENT in reason:  # a new KV v2 mount upgrades itself, then serves
            raise Retryable(f"vault: {what}: {reason}") from None
        raise RotationError(f"vault: {what}: {reason}") from None
