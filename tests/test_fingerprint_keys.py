"""Fingerprints under the installation's own key: a report cannot be used to test a
guessed secret offline, while committed baselines (public key) still match on every
machine."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from sentinel.errors import ConfigError
from sentinel.fingerprint import PUBLIC, PUBLIC_KEY, FingerprintKey, require_private
from tests.conftest import run_cli, token


def _hmac(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def _scan(target: Path, home: Path, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "scan", "path", str(target), "-f", "json", *extra, env={"SENTINEL_HOME": str(home), **env}
    )


@pytest.fixture
def leak(tmp_path: Path) -> tuple[Path, str]:
    secret = token("ghp", 71)
    target = tmp_path / "src" / "settings.env"
    target.parent.mkdir()
    target.write_text(f"GITHUB_TOKEN={secret}\n")
    return target, secret


def test_a_report_cannot_confirm_a_guess_under_the_public_key(
    tmp_path: Path, leak: tuple[Path, str]
) -> None:
    target, secret = leak
    home = tmp_path / "home"
    res = _scan(target, home)
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    [finding] = doc["findings"]
    # anyone can compute this one: it must not be what the report carries
    assert finding["fingerprint"] != _hmac(PUBLIC_KEY, secret)
    key_file = home / "fingerprint.key"
    assert finding["fingerprint"] == _hmac(key_file.read_bytes().strip(), secret)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert doc["stats"]["fingerprint_key_id"] != PUBLIC.id
    assert "warnings" not in doc["stats"]


def test_each_installation_has_its_own_key_and_keeps_it(
    tmp_path: Path, leak: tuple[Path, str]
) -> None:
    target, _ = leak

    def fp(home: Path) -> str:
        return str(json.loads(_scan(target, home).stdout)["findings"][0]["fingerprint"])

    a, b = tmp_path / "a", tmp_path / "b"
    assert fp(a) == fp(a)  # stable run to run
    assert fp(a) != fp(b)


def test_the_key_can_be_set_by_environment_or_file(tmp_path: Path, leak: tuple[Path, str]) -> None:
    target, secret = leak
    res = _scan(target, tmp_path / "h1", SENTINEL_FINGERPRINT_KEY="team-secret-key-0001")
    assert json.loads(res.stdout)["findings"][0]["fingerprint"] == _hmac(
        b"team-secret-key-0001", secret
    )
    key_file = tmp_path / "team.key"
    key_file.write_text("another-team-key-0002\n")
    res = _scan(target, tmp_path / "h2", SENTINEL_FINGERPRINT_KEY_FILE=str(key_file))
    assert json.loads(res.stdout)["findings"][0]["fingerprint"] == _hmac(
        b"another-team-key-0002", secret
    )
    missing = _scan(target, tmp_path / "h3", SENTINEL_FINGERPRINT_KEY_FILE=str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1 and "no such key file" in missing.stderr


def test_an_unwritable_home_gets_a_one_off_key_and_says_so(
    tmp_path: Path, leak: tuple[Path, str]
) -> None:
    if os.geteuid() == 0:
        home = Path("/proc/sentinel-cannot-be-here")  # not creatable even by root
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        home = ro / "home"
    target, secret = leak
    res = _scan(target, home)
    assert res.returncode == 1
    doc = json.loads(res.stdout)
    assert doc["findings"][0]["fingerprint"] != _hmac(PUBLIC_KEY, secret)
    assert any("one-off key" in w for w in doc["stats"]["warnings"])
    assert "sentinel: warning: fingerprints are under a one-off key" in res.stderr


def test_the_public_key_is_named_as_such_when_chosen(
    tmp_path: Path, leak: tuple[Path, str]
) -> None:
    target, _ = leak
    res = _scan(target, tmp_path / "h", SENTINEL_FINGERPRINT_KEY=PUBLIC_KEY.decode())
    assert any("public key" in w for w in json.loads(res.stdout)["stats"]["warnings"])


def test_a_committed_baseline_matches_on_another_installation(
    tmp_path: Path, leak: tuple[Path, str]
) -> None:
    target, _ = leak
    base = tmp_path / "baseline.json"
    env_a = {"SENTINEL_HOME": str(tmp_path / "a")}
    made = run_cli("baseline", "create", str(target.parent), "-o", str(base), env=env_a)
    assert made.returncode == 0, made.stderr
    assert json.loads(base.read_text())["key_id"] == PUBLIC.id
    # a colleague's machine, or the CI runner: another installation key
    assert _scan(target, tmp_path / "b", "--baseline", str(base)).returncode == 0
    # a new secret still reports
    target.write_text(target.read_text() + f"NEW={token('ghp', 72)}\n")
    res = _scan(target, tmp_path / "b", "--baseline", str(base))
    assert res.returncode == 1
    assert len(json.loads(res.stdout)["findings"]) == 1


def test_a_private_baseline_matches_only_its_installation(
    tmp_path: Path, leak: tuple[Path, str]
) -> None:
    target, _ = leak
    base = tmp_path / "baseline.json"
    env_a = {"SENTINEL_HOME": str(tmp_path / "a")}
    made = run_cli(
        "baseline",
        "create",
        str(target.parent),
        "-o",
        str(base),
        "--key",
        "installation",
        env=env_a,
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(base.read_text())["key_id"] != PUBLIC.id
    assert _scan(target, tmp_path / "a", "--baseline", str(base)).returncode == 0
    other = _scan(target, tmp_path / "b", "--baseline", str(base))
    assert other.returncode == 2
    assert "made with another fingerprint key" in other.stderr


def test_a_baseline_from_a_report_uses_the_reports_key(
    tmp_path: Path, leak: tuple[Path, str]
) -> None:
    target, _ = leak
    report = tmp_path / "report.json"
    report.write_text(_scan(target, tmp_path / "a").stdout)
    base = tmp_path / "b.json"
    env_a = {"SENTINEL_HOME": str(tmp_path / "a")}
    made = run_cli("baseline", "create", "--from-report", str(report), "-o", str(base), env=env_a)
    assert made.returncode == 0, made.stderr
    assert _scan(target, tmp_path / "a", "--baseline", str(base)).returncode == 0
    # that report's fingerprints are not under the public key: asking for it is refused
    public = run_cli(
        "baseline",
        "create",
        "--from-report",
        str(report),
        "--key",
        "public",
        "-o",
        str(base),
        env=env_a,
    )
    assert public.returncode == 2
    assert "not under the public key" in public.stderr


def test_the_hooks_printed_baseline_command_unblocks_on_any_installation(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "app.env").write_text(f"GITHUB_TOKEN={token('ghp', 73)}\n")
    subprocess.run(["git", "-C", str(repo), "add", "app.env"], check=True)
    env = {"SENTINEL_HOME": str(tmp_path / "dev")}
    blocked = run_cli("hook", "pre-commit", cwd=repo, env=env)
    assert blocked.returncode == 1
    [line] = [ln for ln in blocked.stderr.splitlines() if "baseline add" in ln]
    fp = line.split("baseline add", 1)[1].split()[0]
    added = run_cli("baseline", "add", fp, cwd=repo, env=env)
    assert added.returncode == 0, added.stderr
    assert run_cli("hook", "pre-commit", cwd=repo, env=env).returncode == 0
    # the same committed baseline on the CI runner's installation
    ci = {"SENTINEL_HOME": str(tmp_path / "ci")}
    assert run_cli("hook", "pre-commit", cwd=repo, env=ci).returncode == 0


def test_a_store_refuses_the_public_key_and_a_one_off_key() -> None:
    with pytest.raises(ConfigError, match="public"):
        require_private(PUBLIC)
    with pytest.raises(ConfigError, match="no lasting"):
        require_private(FingerprintKey(os.urandom(32), "x", ephemeral=True))
    assert require_private(FingerprintKey(b"k" * 32, "env")).key == b"k" * 32
