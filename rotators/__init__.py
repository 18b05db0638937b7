"""Secret stores, credential rotators and revokers, and the rotation state machine.

The registry is a plain dict from name to ``module:attribute``; a module is imported
only when its provider is used, so the CLI and the hooks start without boto3 or hvac.
Each provider module has ``build(options) -> Rotator | Revoker`` and each store module
``build(options) -> SecretStore``, ``options`` being the TOML table that configures it.
"""

from __future__ import annotations

import importlib
from typing import Any

# rotator name (as rules name it: ``rotator = "aws-iam-access-key"``) -> module
PROVIDERS: dict[str, str] = {
    "aws-iam-access-key": "rotators.providers.aws_iam",
    "postgres-password": "rotators.providers.postgres",
    "mariadb-password": "rotators.providers.mariadb",
    "vault-database-static-role": "rotators.providers.vault_database",
    "github-token": "rotators.providers.github",
    "slack-token": "rotators.providers.slack",
    "gitlab-token": "rotators.providers.gitlab",
    "vault-token": "rotators.providers.vault_token",
}

# what each provider can do: mint a replacement and revoke ("rotate"), or only revoke
MODES: dict[str, str] = {
    "aws-iam-access-key": "rotate",
    "postgres-password": "rotate",
    "mariadb-password": "rotate",
    "vault-database-static-role": "rotate",
    "github-token": "revoke",
    "slack-token": "revoke",
    "gitlab-token": "revoke",
    "vault-token": "revoke",
}

# store kind (``[[rotation.targets]] store = "..."``) -> module
STORES: dict[str, str] = {
    "vault-kv": "rotators.stores.vault_kv",
    "aws-secretsmanager": "rotators.stores.aws_secretsmanager",
}


def provider_module(name: str) -> Any:
    if name not in PROVIDERS:
        raise KeyError(f"no rotator named {name!r}")
    return importlib.import_module(PROVIDERS[name])


def store_module(kind: str) -> Any:
    if kind not in STORES:
        raise KeyError(f"no secret store kind {kind!r}")
    return importlib.import_module(STORES[kind])
