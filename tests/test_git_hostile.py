"""A scanned repository's own configuration is hostile input (issue #12, section 1).

Each test plants programs in a real repository's ``.git/config`` (and its attributes)
under every key class git documents as running a program: signature verification,
fsmonitor, hooks, pagers, editors, external diff, textconv and filter drivers, transports
and credential helpers. Each program would leave a file behind; the tests run real
scans and real hooks through the real git binary and check that no file appears. Other
keys change what git prints (replace refs, colour, abbreviation, encodings): the scan
must report what is really in the repository all the same.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GitRepo, run_cli, token
from tests.test_hooks_server import Server, push

pytestmark = pytest.mark.integration

MakeRepo = Callable[..., GitRepo]

PGP_SIG = (
    "-----BEGIN PGP SIGNATURE-----\n\n"
    "iQEzBAABCAAdFiEEaGVsbG8gd29ybGQgdGhpcyBpcyBub3QgcmVhbAAKCRAAAAAA\n"
    "=abcd\n"
    "-----END PGP SIGNATURE-----"
)
SSH_SIG = (
    "-----BEGIN SSH SIGNATURE-----\n"
    "U1NIU0lHAAAAAQAAADMAAAALc3NoLWVkMjU1MTkAAAAgbm90IGEgcmVhbCBrZXkgbm90IGEg\n"
    "-----END SSH SIGNATURE-----"
)
X509_SIG = (
    "-----BEGIN SIGNED MESSAGE-----\n"
    "MIAGCSqGSIb3DQEHAqCAMIACAQExDzANBglghkgBZQMEAgEFADCABgkqhkiG9w0B\n"
    "-----END SIGNED MESSAGE-----"
)


class Payloads:
    """Programs that each record, in ``ran/``, that they ran."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ran = root / "ran"
        self.ran.mkdir(parents=True)

    def make(self, name: str) -> str:
        path = self.root / "bin" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(
            f'#!/bin/sh\necho "$@" >> "{self.ran / name}"\ncat >/dev/null 2>&1\nexit 0\n'
        )
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        return str(path)

    def which_ran(self) -> list[str]:
        return sorted(p.name for p in self.ran.iterdir())


@pytest.fixture
def payloads(tmp_path: Path) -> Payloads:
    return Payloads(tmp_path / "payloads")


def signed_commit(repo: GitRepo, signature: str, message: str, git_dir: str | None = None) -> str:
    """A commit on HEAD's branch carrying a ``gpgsig`` header (its signature is junk:
    what matters is that ``git log --show-signature`` hands it to a verifier)."""
    gd = ["--git-dir", git_dir] if git_dir else []
    base = ["git", *gd]
    tree = subprocess.run(
        [*base, "rev-parse", "HEAD^{tree}"], cwd=repo.path, capture_output=True, text=True
    ).stdout.strip()
    parent = subprocess.run(
        [*base, "rev-parse", "HEAD"], cwd=repo.path, capture_output=True, text=True
    ).stdout.strip()
    sig = "\n ".join(signature.splitlines())
    body = (
        f"tree {tree}\nparent {parent}\n"
        "author Ann Author <ann@example.org> 1700000000 +0000\n"
        "committer Ann Author <ann@example.org> 1700000000 +0000\n"
        f"gpgsig {sig}\n\n{message}\n"
    )
    sha = subprocess.run(
        [*base, "hash-object", "-t", "commit", "-w", "--stdin"],
        cwd=repo.path,
        input=body,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run([*base, "update-ref", "HEAD", sha], cwd=repo.path, check=True)
    return sha


def plant(git_dir: Path, payloads: Payloads) -> None:
    """Every key class that names a program, pointed at a payload; attributes that put a
    textconv, diff and filter driver on every path."""
    hooks = git_dir.parent / "evil-hooks" if git_dir.name == ".git" else git_dir / "evil-hooks"
    hooks.mkdir(exist_ok=True)
    for name in ("pre-commit", "post-checkout", "reference-transaction", "fsmonitor-watchman"):
        target = hooks / name
        target.write_text(Path(payloads.make("hook")).read_text())
        target.chmod(0o755)
    allowed = payloads.root / "allowed_signers"
    allowed.write_text("ann@example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE\n")
    keys = {
        "log.showSignature": "true",
        "gpg.program": payloads.make("gpg"),
        "gpg.openpgp.program": payloads.make("gpg-openpgp"),
        "gpg.x509.program": payloads.make("gpgsm"),
        "gpg.ssh.program": payloads.make("ssh-keygen"),
        "gpg.ssh.allowedSignersFile": str(allowed),
        "gpg.ssh.defaultKeyCommand": payloads.make("ssh-default-key"),
        "core.fsmonitor": payloads.make("fsmonitor"),
        "core.hooksPath": str(hooks),
        "core.pager": payloads.make("pager"),
        "pager.log": payloads.make("pager-log"),
        "pager.diff": payloads.make("pager-diff"),
        "core.editor": payloads.make("editor"),
        "sequence.editor": payloads.make("sequence-editor"),
        "diff.external": payloads.make("diff-external"),
        "diff.evil.textconv": payloads.make("textconv"),
        "diff.evil.command": payloads.make("diff-driver"),
        "filter.evil.clean": payloads.make("filter-clean"),
        "filter.evil.smudge": payloads.make("filter-smudge"),
        "filter.evil.process": payloads.make("filter-process"),
        "filter.evil.required": "true",
        "core.sshCommand": payloads.make("ssh"),
        "core.gitProxy": payloads.make("proxy"),
        "core.askPass": payloads.make("askpass"),
        "credential.helper": "!" + payloads.make("credential"),
        "uploadpack.packObjectsHook": payloads.make("pack-objects-hook"),
        "core.alternateRefsCommand": payloads.make("alternate-refs"),
        "remote.origin.url": "ext::" + payloads.make("ext-remote") + " %G",
        "protocol.ext.allow": "always",
        "color.ui": "always",
        "color.diff": "always",
        "core.abbrev": "4",
        "i18n.logOutputEncoding": "ISO-8859-1",
        "log.decorate": "full",
        "diff.noprefix": "true",
        "gc.auto": "1",
    }
    for key, value in keys.items():
        subprocess.run(["git", f"--git-dir={git_dir}", "config", key, value], check=True)
    info = git_dir / "info"
    info.mkdir(exist_ok=True)
    (info / "attributes").write_text("* diff=evil filter=evil\n")


@pytest.fixture
def hostile(git_repo: MakeRepo, payloads: Payloads) -> tuple[GitRepo, str]:
    """A repository with a secret in its history, commits signed in all three formats,
    and every program key planted (after the commits: planting first would run them)."""
    repo = git_repo("hostile")
    secret = token("ghp", 12)
    repo.commit("init", {"README.md": "hello\n", ".gitattributes": "* diff=evil filter=evil\n"})
    repo.commit("add config", {"app.env": f"GITHUB_TOKEN={secret}\n"})
    for sig, msg in ((PGP_SIG, "pgp signed"), (SSH_SIG, "ssh signed"), (X509_SIG, "x509 signed")):
        signed_commit(repo, sig, msg)
    repo.git("tag", "-a", "-m", "release", "v1")
    plant(repo.path / ".git", payloads)
    return repo, secret


def scan(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    res = run_cli("scan", "git", *args, "--format", "json", env=env)
    assert "Traceback" not in res.stderr, res.stderr
    return res.returncode, json.loads(res.stdout), res.stderr


def rule_ids(report: dict[str, Any]) -> set[str]:
    return {f["rule_id"] for f in report["findings"]}


@pytest.mark.parametrize(
    "mode",
    [(), ("--branch", "main"), ("--since", "HEAD~4"), ("--no-history",)],
    ids=["default", "branch", "since", "no-history"],
)
def test_scan_git_runs_no_program_the_repository_names(
    hostile: tuple[GitRepo, str], payloads: Payloads, mode: tuple[str, ...]
) -> None:
    repo, _ = hostile
    code, report, err = scan(str(repo.path), *mode)
    assert payloads.which_ran() == [], err
    assert code == 1, err
    assert any(str(f.get("path", "")).endswith("app.env") for f in report["findings"]), report


def test_the_first_signature_payload_alone_would_run_under_plain_git(
    hostile: tuple[GitRepo, str], payloads: Payloads
) -> None:
    """The fixture is live: git itself, as Sentinel used to call it, runs the payload."""
    subprocess.run(
        ["git", f"--git-dir={hostile[0].path / '.git'}", "log", "--format=%H"],
        capture_output=True,
        check=False,
    )
    assert "gpg-openpgp" in payloads.which_ran() or "gpg" in payloads.which_ran()


def test_findings_are_attributed_truly_despite_output_settings(
    hostile: tuple[GitRepo, str], payloads: Payloads
) -> None:
    """Colour, a four-digit abbreviation, decorations, no diff prefixes and a Latin-1 log
    encoding in the repository's config change nothing in the report."""
    repo, secret = hostile
    code, report, err = scan(str(repo.path))
    assert code == 1, err
    found = [f for f in report["findings"] if str(f.get("path", "")).endswith("app.env")]
    assert found, report["findings"]
    f = found[0]
    introduced = repo.git("log", "--format=%H", "--no-show-signature", "-1", "--", "app.env")
    assert f["commit"] == introduced
    assert f["author"].startswith("Ann Author")
    assert "\x1b" not in json.dumps(report)
    assert secret not in json.dumps(report)


def test_replace_objects_cannot_swap_a_secret_for_clean_content(git_repo: MakeRepo) -> None:
    """``git replace`` makes git show another object's content in place of a blob or a
    commit's history: a scan reads what is really stored."""
    repo = git_repo("replaced")
    repo.commit("init", {"README.md": "hello\n"})
    secret = token("ghp", 21)
    repo.commit("config", {"app.env": f"GITHUB_TOKEN={secret}\n"})
    leaked = repo.git("rev-parse", "HEAD:app.env")
    clean = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"],
        cwd=repo.path,
        input="GITHUB_TOKEN=\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    repo.git("replace", leaked, clean)
    for mode in ((), ("--branch", "main"), ("--no-history",)):
        code, report, err = scan(str(repo.path), *mode)
        assert code == 1 and [
            f for f in report["findings"] if str(f.get("path", "")).endswith("app.env")
        ], (
            mode,
            err,
        )


def test_a_grafted_history_cannot_hide_older_commits(git_repo: MakeRepo) -> None:
    repo = git_repo("grafted")
    secret = token("ghp", 22)
    repo.commit("config", {"app.env": f"GITHUB_TOKEN={secret}\n"})
    repo.commit("remove", remove=("app.env",))
    repo.commit("more", {"README.md": "hello\n"})
    repo.git("replace", "--graft", "HEAD")  # HEAD now appears to have no parent
    code, report, err = scan(str(repo.path), "--branch", "main")
    assert code == 1, err
    assert [f for f in report["findings"] if str(f.get("path", "")).endswith("app.env")], report


def test_git_variables_in_the_callers_environment_run_nothing(
    hostile: tuple[GitRepo, str], payloads: Payloads
) -> None:
    """GIT_* variables left in a shell (an external diff, an ssh command, extra config
    for every git call) do not reach the git Sentinel runs on a target."""
    repo, _ = hostile
    env = {
        "GIT_EXTERNAL_DIFF": payloads.make("env-external-diff"),
        "GIT_SSH_COMMAND": payloads.make("env-ssh"),
        "GIT_PAGER": payloads.make("env-pager"),
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "core.fsmonitor",
        "GIT_CONFIG_VALUE_0": payloads.make("env-fsmonitor"),
    }
    code, _, err = scan(str(repo.path), env=env)
    assert code == 1, err
    assert payloads.which_ran() == []


def test_pre_commit_hook_runs_no_program_the_repository_names(
    hostile: tuple[GitRepo, str], payloads: Payloads
) -> None:
    repo, _ = hostile
    secret = token("ghp", 31)
    repo.write("deploy.env", f"GITHUB_TOKEN={secret}\n")
    # stage without running the planted filter: the index entry is written directly
    blob = subprocess.run(
        ["git", "hash-object", "-w", "--no-filters", "deploy.env"],
        cwd=repo.path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    config = repo.path / ".git" / "config"
    planted = config.read_bytes()
    config.write_bytes(b"")  # staging under the planted config would run its filters
    try:
        repo.git("update-index", "--add", "--cacheinfo", f"100644,{blob},deploy.env")
    finally:
        config.write_bytes(planted)
    assert payloads.which_ran() == []
    res = run_cli("hook", "pre-commit", cwd=repo.path)
    assert payloads.which_ran() == [], res.stderr
    assert res.returncode == 1, res.stderr
    assert "deploy.env" in res.stderr


def test_hooks_install_still_honours_core_hooks_path(
    git_repo: MakeRepo,
) -> None:
    """The overrides do not change where ``hooks install`` puts the hook: that is read
    from the user's own configuration on purpose."""
    repo = git_repo("own")
    repo.commit("init", {"README.md": "hi\n"})
    repo.git("config", "core.hooksPath", ".githooks")
    res = run_cli("hooks", "install", "--repo", str(repo.path))
    assert res.returncode == 0, res.stderr
    assert (repo.path / ".githooks" / "pre-commit").is_file()


def test_pre_receive_runs_no_program_the_server_repository_names(
    tmp_path: Path, git_repo: MakeRepo, payloads: Payloads
) -> None:
    server_path = tmp_path / "server.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(server_path)], check=True)
    assert run_cli("hooks", "install", "--repo", str(server_path)).returncode == 0
    server = Server(server_path)
    dev = git_repo("dev")
    dev.commit("init", {"README.md": "hello\n"})
    dev.git("remote", "add", "origin", f"file://{server_path}")
    first = push(dev, "main")
    assert first.returncode == 0, first.stderr
    hooks_dir = server_path / "hooks"
    plant(server_path, payloads)
    # the server's hook stays where git runs it: core.hooksPath is the server admin's
    subprocess.run(
        ["git", f"--git-dir={server_path}", "config", "core.hooksPath", str(hooks_dir)], check=True
    )
    for sig, msg in ((PGP_SIG, "pgp"), (SSH_SIG, "ssh"), (X509_SIG, "x509")):
        signed_commit(dev, sig, msg)
    secret = token("ghp", 41)
    dev.commit("leak", {"app.env": f"GITHUB_TOKEN={secret}\n"})
    res = push(dev, "main", env={"GIT_CONFIG_COUNT": "0"})
    # git receive-pack itself runs the server's core.alternateRefsCommand while the push
    # sits in quarantine (it does so with no hook installed): the server's admin's key,
    # outside any git call of Sentinel's
    assert [p for p in payloads.which_ran() if p != "alternate-refs"] == [], res.stderr
    assert res.returncode != 0, res.stderr
    assert "app.env" in res.stderr
    assert server.ref("refs/heads/main") != dev.git("rev-parse", "HEAD")


def test_scan_of_a_bare_mirror_runs_nothing(
    hostile: tuple[GitRepo, str], payloads: Payloads, tmp_path: Path
) -> None:
    """The sweeps scan bare mirrors: the same keys planted in one run nothing."""
    repo, _ = hostile
    mirror = tmp_path / "mirror.git"
    subprocess.run(
        [
            "git",
            "-c",
            "protocol.ext.allow=never",
            "clone",
            "-q",
            "--mirror",
            "--no-local",
            f"file://{repo.path}",
            str(mirror),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"},
    )
    for p in payloads.ran.iterdir():  # cloning ran the source's programs, not Sentinel
        p.unlink()
    plant(mirror, payloads)
    code, report, err = scan(str(mirror))
    assert payloads.which_ran() == [], err
    assert code == 1 and report["findings"], err
