"""Git history through the real CLI and the real git binary: what is found, where it is
attributed, what is deliberately not scanned, and how failures look to a user."""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import SCHEMAS, GitRepo, run_cli, token

pytestmark = pytest.mark.integration

MakeRepo = Callable[..., GitRepo]


# -- helpers ----------------------------------------------------------------------------------


def git(cwd: Path, *args: str) -> str:
    res = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return res.stdout.strip()


def scan(repo: Path | str, *extra: str, expect: int | None = None) -> dict[str, Any]:
    """``sentinel scan git REPO --format json``; the parsed report."""
    res = run_cli("scan", "git", str(repo), "--format", "json", *extra)
    assert res.returncode in (0, 1), res.stderr
    if expect is not None:
        assert res.returncode == expect, (res.stdout, res.stderr)
    doc: dict[str, Any] = json.loads(res.stdout)
    assert doc["version"] == 1
    # the exit code says whether anything was found
    assert res.returncode == (1 if doc["findings"] else 0)
    assert "Traceback" not in res.stderr
    return doc


def history(
    repo: Path | str, *, branch: str | None = None, since: str | None = None
) -> dict[str, Any]:
    """The same report as ``scan git --format json --show-secrets``, run in this process
    (the engine's start-up is paid once per process, and most tests only need findings)."""
    from sentinel.models import ScanResult
    from sentinel.report import render
    from sentinel.scanner import ScanOptions, scan_git

    result: ScanResult = scan_git(str(repo), ScanOptions(), branch=branch, since=since)
    out = io.StringIO()
    render(result, "json", out, show_secrets=True)
    doc: dict[str, Any] = json.loads(out.getvalue())
    return doc


def find(doc: dict[str, Any], secret: str) -> list[dict[str, Any]]:
    return [f for f in doc["findings"] if f.get("secret") == secret]


def assert_one_line_error(res: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    err = res.stderr.strip()
    assert err, "an error must say something on stderr"
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in res.stderr
    assert "internal error" not in err, err
    assert err.startswith("sentinel: error:"), err
    for n in needles:
        assert n.lower() in err.lower(), err
    assert res.stdout.strip() == "", "no report on an error"
    return err


def unique_blobs(git_dir: Path) -> int:
    out = git(git_dir, "cat-file", "--batch-all-objects", "--batch-check")
    return sum(1 for ln in out.splitlines() if ln.split()[1] == "blob")


@pytest.fixture
def repo(git_repo: MakeRepo) -> GitRepo:
    return git_repo("repo")


# -- attribution ------------------------------------------------------------------------------


def test_removed_secret_attributed_to_introducing_commit(repo: GitRepo) -> None:
    secret = token("ghp", 1)
    repo.commit("readme", {"README.md": "hello\n"}, date="2021-03-04T05:06:07+00:00")
    sha = repo.commit(
        "add config",
        {"app/config.env": f"# settings\nDEBUG=1\nGITHUB_TOKEN={secret}\n"},
        date="2021-03-05T10:00:00+00:00",
    )
    repo.commit("remove the token", remove=("app/config.env",), date="2021-03-06T10:00:00+00:00")
    assert not (repo.path / "app/config.env").exists()

    doc = scan(repo.path, "--show-secrets", expect=1)
    [f] = find(doc, secret)
    assert f["source"] == "git"
    assert f["rule_id"].startswith("github.")
    assert f["commit"] == sha
    assert f["author"] == "Ann Author"
    assert f["email"] == "ann@example.org"
    assert f["date"] == "2021-03-05T10:00:00+00:00"
    assert f["path"] == "app/config.env"
    assert f["line"] == 3
    assert f["column"] == len("GITHUB_TOKEN=") + 1
    assert len(doc["findings"]) == 1
    assert doc["stats"]["source"] == "git"
    assert doc["stats"]["commits_scanned"] == 3


def test_secret_kept_across_many_edits_reported_once_at_oldest_commit(repo: GitRepo) -> None:
    secret = token("ghp", 2)
    first = repo.commit(
        "add token", {"settings.py": f'TOKEN = "{secret}"\n'}, date="2020-01-01T00:00:00+00:00"
    )
    for i in range(1, 8):  # every edit makes a new blob that still holds the same secret
        body = f'TOKEN = "{secret}"\n' + "".join(f"OPTION_{j} = {j}\n" for j in range(i))
        repo.commit(f"edit {i}", {"settings.py": body}, date=f"2020-01-0{i + 1}T00:00:00+00:00")

    doc = history(repo.path)
    hits = find(doc, secret)
    assert len(hits) == 1, hits
    assert hits[0]["commit"] == first
    assert hits[0]["date"] == "2020-01-01T00:00:00+00:00"
    assert hits[0]["line"] == 1
    assert doc["stats"]["findings"] == 1
    assert doc["stats"]["occurrences"] == 1
    assert doc["stats"]["blobs_scanned"] == 8
    assert doc["stats"]["suppressed"].get("repeat_in_history") == 7


def test_oldest_commit_wins_across_time_zones(repo: GitRepo) -> None:
    secret = token("ghp", 3)
    # 10:00 at +05:00 is 05:00 UTC: earlier than 06:00 UTC, though it sorts later as text
    first = repo.commit("add", {"a.env": f"T={secret}\n"}, date="2020-01-01T10:00:00+05:00")
    repo.commit("edit", {"a.env": f"T={secret}\nX=1\n"}, date="2020-01-01T06:00:00+00:00")
    doc = history(repo.path)
    [f] = find(doc, secret)
    assert f["commit"] == first


def test_same_author_date_on_two_branches_picks_the_same_commit_every_run(
    repo: GitRepo,
) -> None:
    """A cherry-pick keeps the author date: two commits tie for "oldest". Whichever
    worker finishes first, the report must name the same one (the smaller id)."""
    secret = token("ghp", 4)
    repo.commit("base", {"README.md": "base\n"})
    repo.git("checkout", "-q", "-b", "release")
    when = "2022-08-02T09:33:51-04:00"
    on_release = repo.commit("docs", {"docs.rst": f"url: {secret}\nrelease\n"}, date=when)
    repo.git("checkout", "-q", "main")
    on_main = repo.commit("docs", {"docs.rst": f"url: {secret}\nmain\n"}, date=when)
    assert on_main != on_release
    expected = min(on_main, on_release)
    for jobs in ("1", "2"):
        [f] = find(scan(repo.path, "--show-secrets", "--jobs", jobs), secret)
        assert f["commit"] == expected


def test_deep_delta_chains_are_read_whole_in_any_order(repo: GitRepo) -> None:
    """A repacked history stores most versions as deltas of others: every version must
    come back whole, the secret in an old version found, whatever the delta layout."""
    from sentinel.sources import git as git_source

    secret = token("ghp", 5)
    lines = [f"setting_{i} = {i * 7919}\n" for i in range(400)]
    first = ""
    for v in range(60):
        lines[(v * 37) % len(lines)] = f"setting_{v} = changed in version {v}\n"
        body = "".join(lines) + (f"TOKEN = '{secret}'\n" if v == 20 else "")
        sha = repo.commit(f"v{v}", {"big/settings.py": body}, date=f"2020-01-01T00:{v:02d}:00Z")
        if v == 20:
            first = sha
    repo.git("repack", "-a", "-d", "-f", "--depth=50", "--window=250", "-q")
    listed = git_source.list_objects(str(repo.path / ".git"), None)
    bases = {ln.split(b" ")[3] for ln in listed}
    assert len(bases - {b"0" * 40}) > 20, "the repack made no delta chains to test"
    ordered, sizes, too_large = git_source.delta_order(listed, 10 << 20)
    assert too_large == 0
    assert sorted(ordered) == sorted(listed)
    assert sizes == [int(ln.split(b" ")[2]) for ln in ordered]
    seen: set[bytes] = set()
    shas = {ln.split(b" ")[1] for ln in listed}
    for ln in ordered:  # every object comes after the base it is stored against
        _, sha, _, base = ln.split(b" ")
        assert base not in shas or base in seen
        seen.add(sha)
    for jobs in ("1", "2"):
        doc = scan(repo.path, "--show-secrets", "--jobs", jobs)
        [f] = find(doc, secret)
        assert f["commit"] == first
        assert f["line"] == 401
        assert doc["stats"]["blobs_scanned"] == unique_blobs(repo.path)


# -- every ref, not only HEAD ---------------------------------------------------------------


def test_secret_only_on_a_non_default_branch(repo: GitRepo) -> None:
    secret = token("ghp", 10)
    repo.commit("base", {"README.md": "base\n"})
    repo.git("checkout", "-q", "-b", "feature/x")
    sha = repo.commit("feature", {"feature.env": f"KEY={secret}\n"})
    repo.git("checkout", "-q", "main")
    assert not (repo.path / "feature.env").exists()

    [f] = find(history(repo.path), secret)
    assert (f["commit"], f["path"], f["line"]) == (sha, "feature.env", 1)


def test_secret_only_in_an_annotated_tag_message(repo: GitRepo) -> None:
    secret = token("ghp", 11)
    repo.commit("base", {"README.md": "base\n"})
    repo.git("tag", "-a", "v1.0", "-m", f"release 1.0\n\ndeploy with {secret}\n")
    tag_sha = repo.git("rev-parse", "v1.0")

    doc = history(repo.path)
    [f] = find(doc, secret)
    assert f["object_type"] == "tag"
    assert f["commit"] == tag_sha
    assert f["author"] == "Ann Author"
    assert f["line"] == 3
    assert f["column"] == len("deploy with ") + 1
    assert doc["stats"]["tags_scanned"] == 1


def test_deleted_tag_message_is_not_reported_but_a_tag_of_a_tag_is(repo: GitRepo) -> None:
    """``git tag -d`` leaves the tag object behind until gc; no ref reaches it any more."""
    deleted, nested = token("ghp", 13), token("ghp", 14)
    repo.commit("base", {"README.md": "base\n"})
    repo.git("tag", "-a", "gone", "-m", f"oops {deleted}")
    repo.git("tag", "-d", "gone")
    repo.git("tag", "-a", "inner", "-m", f"inner {nested}")
    repo.git("-c", "advice.nestedTag=false", "tag", "-a", "outer", "-m", "outer", "inner")
    repo.git("tag", "-d", "inner")  # only refs/tags/outer -> tag object -> inner tag object

    doc = history(repo.path)
    assert find(doc, deleted) == []
    [f] = find(doc, nested)
    assert f["object_type"] == "tag"


def test_secret_only_in_a_commit_message(repo: GitRepo) -> None:
    secret = token("ghp", 12)
    repo.commit("base", {"README.md": "base\n"})
    sha = repo.commit(f"rotate creds\n\nold one was {secret}", date="2022-02-02T02:02:02+00:00")

    [f] = find(history(repo.path), secret)
    assert f["object_type"] == "commit"
    assert f["commit"] == sha
    assert f["author"] == "Ann Author"
    assert f["date"] == "2022-02-02T02:02:02+00:00"
    assert f["line"] == 3


def test_secrets_in_every_stash_entry_not_only_the_newest(repo: GitRepo) -> None:
    older, newer, untracked = token("ghp", 20), token("ghp", 21), token("npm", 22)
    repo.commit("base", {"app.py": "x = 1\n"})
    repo.write("app.py", f'x = 1\nTOKEN = "{older}"\n')
    repo.write("new.env", f"NPM_TOKEN={untracked}\n")
    repo.git("stash", "push", "-q", "-u", "-m", "older")
    repo.write("app.py", f'x = 1\nTOKEN = "{newer}"\n')
    repo.git("stash", "push", "-q", "-m", "newer")
    assert repo.git("stash", "list").count("\n") == 1  # two entries
    assert (repo.path / "app.py").read_text() == "x = 1\n"
    assert not (repo.path / "new.env").exists()

    doc = history(repo.path)
    for s in (older, newer):
        [f] = find(doc, s)
        assert (f["path"], f["line"]) == ("app.py", 2)
    [f] = find(doc, untracked)
    assert f["path"] == "new.env"


def test_dropped_stash_entry_is_not_reported(repo: GitRepo) -> None:
    kept, dropped = token("ghp", 23), token("ghp", 24)
    repo.commit("base", {"app.py": "x = 1\n"})
    repo.write("app.py", f'T = "{dropped}"\n')
    repo.git("stash", "push", "-q")
    repo.write("app.py", f'T = "{kept}"\n')
    repo.git("stash", "push", "-q")
    repo.git("stash", "drop", "-q", "stash@{1}")  # the older one, holding `dropped`

    doc = history(repo.path)
    assert find(doc, kept)
    assert not find(doc, dropped)


def test_secret_only_on_a_remote_tracking_ref(repo: GitRepo, tmp_path: Path) -> None:
    secret = token("ghp", 30)
    repo.commit("base", {"README.md": "base\n"})
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo.path), str(clone))
    sha = repo.commit("upstream adds a key", {"deploy.env": f"GH={secret}\n"})
    git(clone, "fetch", "-q", "origin")
    assert git(clone, "rev-parse", "refs/remotes/origin/main") == sha
    assert git(clone, "rev-parse", "refs/heads/main") != sha

    [f] = find(history(clone), secret)
    assert (f["commit"], f["path"]) == (sha, "deploy.env")


def test_unreachable_blob_is_not_reported(repo: GitRepo, tmp_path: Path) -> None:
    secret = token("ghp", 40)
    repo.commit("base", {"README.md": "base\n"})
    loose = tmp_path / "never-committed.env"
    loose.write_text(f"TOKEN={secret}\n")
    blob = repo.git("hash-object", "-w", str(loose))
    assert repo.git("cat-file", "-t", blob) == "blob"

    doc = history(repo.path)
    assert doc["findings"] == []
    assert doc["stats"]["skipped"].get("unreachable_hit") == 1


def test_amended_away_commit_is_not_reported(repo: GitRepo) -> None:
    """Only the reflog still knows the first version of an amended commit."""
    secret = token("ghp", 41)
    repo.commit("base", {"README.md": "base\n"})
    repo.commit("oops", {"a.env": f"T={secret}\n"})
    repo.write("a.env", "T=${TOKEN}\n")
    repo.git("add", "a.env")
    repo.git("commit", "-q", "--amend", "-m", "fine")

    doc = history(repo.path)
    assert find(doc, secret) == []


# -- each blob once --------------------------------------------------------------------------


def test_each_unique_blob_is_read_once(repo: GitRepo) -> None:
    secret = token("ghp", 50)
    body = f"# same file twice\nTOKEN={secret}\n"
    repo.commit("two copies", {"a/one.env": body, "b/two.env": body, "c.txt": "other\n"})
    repo.commit("a third copy later", {"c/three.env": body})

    doc = history(repo.path)
    hits = find(doc, secret)
    assert hits, doc["findings"]
    assert {f["path"] for f in hits} <= {"a/one.env", "b/two.env", "c/three.env"}
    assert all(f["line"] == 2 for f in hits)
    assert doc["stats"]["findings"] == 1  # one distinct secret
    assert doc["stats"]["blobs_scanned"] == unique_blobs(repo.path) == 2


# -- narrowing: --branch, --since -------------------------------------------------------------


def test_branch_scans_only_history_reachable_from_it(repo: GitRepo) -> None:
    on_main, on_feature = token("ghp", 60), token("ghp", 61)
    repo.commit("base", {"README.md": "base\n"})
    repo.git("checkout", "-q", "-b", "feature")
    repo.commit("feature", {"f.env": f"K={on_feature}\n"})
    repo.git("checkout", "-q", "main")
    repo.commit("main", {"m.env": f"K={on_main}\n"})

    doc = history(repo.path, branch="feature")
    assert find(doc, on_feature)
    assert not find(doc, on_main)

    doc = history(repo.path, branch="main")
    assert find(doc, on_main)
    assert not find(doc, on_feature)


def test_since_skips_what_the_ref_already_contains(repo: GitRepo) -> None:
    old, new = token("ghp", 62), token("ghp", 63)
    repo.commit("old", {"old.env": f"K={old}\n"})
    repo.git("tag", "released")
    sha = repo.commit("new", {"new.env": f"K={new}\n"})

    doc = history(repo.path, since="released")
    [f] = find(doc, new)
    assert f["commit"] == sha
    assert not find(doc, old)

    doc = history(repo.path, since="HEAD")
    assert doc["findings"] == []


@pytest.mark.parametrize("option", ["--branch", "--since"])
def test_missing_ref_is_a_one_line_error(repo: GitRepo, option: str) -> None:
    repo.commit("base", {"README.md": "base\n"})
    res = run_cli("scan", "git", str(repo.path), option, "no-such-branch", "--format", "json")
    assert_one_line_error(res, "no-such-branch")


# -- working tree, bare, empty, not a repository ---------------------------------------------


def test_no_history_scans_the_working_tree_only(repo: GitRepo) -> None:
    in_history, uncommitted = token("ghp", 70), token("ghp", 71)
    repo.commit("add", {"h.env": f"K={in_history}\n"})
    repo.commit("remove", remove=("h.env",))
    repo.write("local.env", f"K={uncommitted}\n")  # never added

    doc = scan(repo.path, "--no-history", "--show-secrets", expect=1)
    [f] = find(doc, uncommitted)
    assert f["source"] == "file"
    assert f["path"].endswith("local.env")
    assert f["line"] == 1
    assert not find(doc, in_history)

    # and the full scan is the other way round
    doc = history(repo.path)
    assert find(doc, in_history)
    assert not find(doc, uncommitted)


def test_bare_repository(repo: GitRepo, tmp_path: Path) -> None:
    secret = token("ghp", 80)
    repo.commit("base", {"README.md": "base\n"})
    sha = repo.commit("add", {"x/y.env": f"K={secret}\n"})
    repo.commit("remove", remove=("x/y.env",))
    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo.path), str(bare))

    [f] = find(scan(bare, "--show-secrets", expect=1), secret)
    assert (f["commit"], f["path"], f["line"]) == (sha, "x/y.env", 1)

    res = run_cli("scan", "git", str(bare), "--no-history", "--format", "json")
    assert_one_line_error(res, "bare")


def test_empty_repository(repo: GitRepo) -> None:
    doc = scan(repo.path, expect=0)
    assert doc["findings"] == []


@pytest.mark.parametrize("kind", ["plain-directory", "missing", "file"])
def test_not_a_repository_is_a_one_line_error(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "target"
    if kind == "plain-directory":
        target.mkdir()
        (target / "a.env").write_text(f"K={token('ghp', 90)}\n")
    elif kind == "file":
        target.write_text("not a repo\n")
    res = run_cli("scan", "git", str(target), "--format", "json")
    assert_one_line_error(res, str(target))


def test_corrupt_pack_is_a_one_line_error_and_does_not_hang(repo: GitRepo, tmp_path: Path) -> None:
    noise = random.Random(7).randbytes(150_000).hex()  # so the pack's middle is blob data
    repo.commit("base", {"README.md": "base\n"})
    repo.commit("data", {"blob.txt": noise + "\n"})
    repo.commit("more", {"small.txt": "x\n"})
    clone = tmp_path / "corrupt"
    git(tmp_path, "clone", "-q", "--no-local", str(repo.path), str(clone))
    git(clone, "repack", "-adq")
    [pack] = list((clone / ".git/objects/pack").glob("*.pack"))
    assert not list((clone / ".git/objects").glob("??/*")), "everything is in the pack"
    size = pack.stat().st_size
    pack.chmod(0o644)
    with open(pack, "r+b") as fh:
        fh.seek(size // 2)
        fh.write(b"\xde\xad\xbe\xef" * 64)

    res = subprocess.run(
        [sys.executable, "-m", "sentinel.cli.main", "scan", "git", str(clone), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,  # a hang fails the test instead of blocking the run
    )
    err = assert_one_line_error(res)
    assert any(w in err for w in ("corrupt", "cannot read", "inflate")), err


# -- formats and plaintext ---------------------------------------------------------------------


@pytest.fixture
def leaky(repo: GitRepo) -> tuple[GitRepo, str, str]:
    secret = token("ghp", 100)
    sha = repo.commit("add", {"conf/app.env": f"A=1\nTOKEN={secret}\n"})
    repo.commit("remove", remove=("conf/app.env",))
    return repo, secret, sha


def test_jsonl_has_commit_info(leaky: tuple[GitRepo, str, str]) -> None:
    repo, secret, sha = leaky
    res = run_cli("scan", "git", str(repo.path), "--format", "jsonl")
    assert res.returncode == 1, res.stderr
    lines = [json.loads(ln) for ln in res.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1
    [f] = lines
    assert (f["commit"], f["path"], f["line"]) == (sha, "conf/app.env", 2)
    assert f["author"] == "Ann Author" and f["email"] == "ann@example.org" and f["date"]
    assert "secret" not in f
    assert secret not in res.stdout + res.stderr


def test_sarif_has_commit_info(leaky: tuple[GitRepo, str, str]) -> None:
    repo, secret, sha = leaky
    res = run_cli("scan", "git", str(repo.path), "--format", "sarif")
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    assert doc["version"] == "2.1.0"
    [run] = doc["runs"]
    [result] = run["results"]
    assert result["ruleId"].startswith("github.")
    loc = result["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"] == "conf/app.env"
    assert loc["region"]["startLine"] == 2
    assert result["properties"]["commit"] == sha
    assert result["properties"]["author"] == "Ann Author"
    assert sha[:12] in result["message"]["text"]
    assert result["partialFingerprints"]
    assert secret not in res.stdout + res.stderr
    jsonschema.validate(doc, json.loads((SCHEMAS / "sarif-2.1.0.json").read_text()))


def test_plaintext_only_with_show_secrets(leaky: tuple[GitRepo, str, str]) -> None:
    repo, secret, _ = leaky
    # jsonl and sarif without --show-secrets are checked in their own tests above
    for fmt in ("json", "table"):
        res = run_cli("scan", "git", str(repo.path), "--format", fmt)
        assert res.returncode == 1, res.stderr
        assert "ghp_" in res.stdout  # the redacted preview is there ...
        assert secret not in res.stdout + res.stderr  # ... the value is not
        assert secret[4:20] not in res.stdout  # not even a long piece of it

    for fmt in ("json", "jsonl", "sarif", "table"):
        res = run_cli("scan", "git", str(repo.path), "--format", fmt, "--show-secrets")
        assert res.returncode == 1, res.stderr
        assert secret in res.stdout, fmt
        assert secret not in res.stderr


@pytest.mark.parametrize("search", ["hyperscan", "split"])
def test_attribution_of_many_hit_blobs_in_one_pass(
    repo: GitRepo, search: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past a handful of hit blobs the walk is searched once (with Hyperscan, or by
    splitting it where Hyperscan cannot load) instead of once per blob; every blob must
    still go to the commit that first added it, whatever its path looks like."""
    from detectors.hsdb import HyperscanUnavailable
    from sentinel.sources import git as git_source

    if search == "split":

        def unavailable(*_: object) -> dict[str, int]:
            raise HyperscanUnavailable("hidden by the test")

        monkeypatch.setattr(git_source.Attribution, "_literal_ends", unavailable)
    expected = {}
    for i in range(24):
        secret = token("ghp", 500 + i)
        path = f"svc {i}/a:b {i}.env" if i % 3 == 0 else f"svc{i}/app.env"
        sha = repo.commit(f"add {i}", {path: f"T={secret}\n"})
        expected[secret] = (sha, path)
    repo.commit("drop half", remove=tuple(p for _, p in list(expected.values())[::2]))
    # the same contents added again later, at new paths: the first commit still wins
    repo.commit("copy", {f"copy/{i}.env": f"T={token('ghp', 500 + i)}\n" for i in range(0, 24, 4)})
    doc = history(repo.path)
    for secret, (sha, path) in expected.items():
        found = find(doc, secret)
        assert (found[0]["commit"], found[0]["path"]) == (sha, path)
