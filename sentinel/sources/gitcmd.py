"""What every git caller needs, in a module light enough for a hook to import."""

from __future__ import annotations


def first_error_line(stderr: bytes) -> str:
    """The first non-blank line git wrote to stderr: its reason, fit for one line."""
    for line in stderr.decode("utf-8", "replace").splitlines():
        if line.strip():
            return line.strip()
    return "git failed"


# -- running git on a repository nobody here controls ------------------------------------------
#
# A scanned repository's own .git/config is input like any other. Git reads it on every
# command, and many of its keys name a program git will run (log.showSignature with
# gpg.program, core.fsmonitor, textconv and filter drivers, ...) or change what git prints
# (color, mailmap, replace refs, abbreviations, encodings). Every git command Sentinel runs
# on a target gets the overrides below on its command line: command-line configuration
# wins over every configuration file, and it is the scope git itself trusts for keys it
# refuses from a repository (uploadpack.packObjectsHook, safe.directory).

OVERRIDES: tuple[tuple[str, str], ...] = (
    # signatures: git log/show run gpg (or ssh-keygen, or gpgsm) to verify them
    ("log.showSignature", "false"),
    ("gpg.program", "/dev/null"),
    ("gpg.openpgp.program", "/dev/null"),
    ("gpg.x509.program", "/dev/null"),
    ("gpg.ssh.program", "/dev/null"),
    ("gpg.ssh.defaultKeyCommand", "/dev/null"),
    ("gpg.ssh.allowedSignersFile", "/dev/null"),
    ("gpg.format", "openpgp"),
    # programs git runs around the index and the work tree
    ("core.fsmonitor", "false"),
    ("core.hooksPath", "/dev/null"),
    ("core.pager", "cat"),
    ("pager.log", "false"),
    ("pager.diff", "false"),
    ("pager.show", "false"),
    ("core.editor", "/dev/null"),
    ("sequence.editor", "/dev/null"),
    ("diff.external", "/dev/null"),
    ("core.attributesFile", "/dev/null"),
    ("core.untrackedCache", "false"),
    # transports, credentials and the programs they run: a scan never talks to a remote
    ("protocol.allow", "never"),
    ("core.sshCommand", "/dev/null"),
    ("core.gitProxy", "/dev/null"),
    ("core.askPass", "/dev/null"),
    ("credential.helper", ""),
    ("core.alternateRefsCommand", "/dev/null"),
    ("uploadpack.packObjectsHook", "/dev/null"),
    # background work a read command could start
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("fetch.writeCommitGraph", "false"),
    # what git prints, which Sentinel parses
    ("core.useReplaceRefs", "false"),
    ("core.quotePath", "false"),
    ("core.abbrev", "no"),
    ("i18n.logOutputEncoding", "UTF-8"),
    ("color.ui", "false"),
    ("color.diff", "false"),
    ("log.mailmap", "false"),
    ("log.decorate", "false"),
    ("log.abbrevCommit", "false"),
    ("log.follow", "false"),
    ("log.showRoot", "true"),
    ("log.diffMerges", "separate"),
    ("diff.renames", "false"),
    ("diff.noprefix", "false"),
    ("diff.mnemonicPrefix", "false"),
    ("diff.relative", "false"),
    ("diff.suppressBlankEmpty", "false"),
    ("diff.context", "3"),
    ("diff.interHunkContext", "0"),
    ("diff.indentHeuristic", "false"),
)

# Variables git sets for the hooks it runs, which the hook's own git calls need: the
# repository, the index being committed, the quarantine of the objects being pushed.
HOOK_VARIABLES = frozenset(
    {
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_COMMON_DIR",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_QUARANTINE_PATH",
        "GIT_NAMESPACE",
        "GIT_PUSH_OPTION_COUNT",
        "GIT_PREFIX",
    }
)
# the push options of a push, and configuration given as ``git -c`` by whoever ran git
# (the user committing, the server's admin): the overrides come later and win over it
_HOOK_PREFIXES = (
    "GIT_PUSH_OPTION_",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_CONFIG_KEY_",
    "GIT_CONFIG_VALUE_",
)


def safe_env(*, hook: bool | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a git command on a target.

    Every ``GIT_*`` variable is dropped (``GIT_EXTERNAL_DIFF``, ``GIT_SSH_COMMAND``,
    ``GIT_EXEC_PATH``, ``GIT_CONFIG_PARAMETERS`` ... each would run or change something),
    except, in a hook, those git set for it. A scan also ignores the system and global
    configuration, so what it reports depends on the target and the command line only;
    a hook keeps them: that is where a server keeps its ``sentinel.*`` settings. ``hook``
    None: a hook when git exported ``GIT_DIR`` or a quarantine to this process."""
    import os

    src = os.environ if base is None else base
    if hook is None:  # the history scan's workers also serve the pre-receive hook
        hook = "GIT_DIR" in src or "GIT_QUARANTINE_PATH" in src
    env = {
        k: v
        for k, v in src.items()
        if not k.startswith("GIT_")
        or (hook and (k in HOOK_VARIABLES or k.startswith(_HOOK_PREFIXES)))
    }
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_PAGER="cat",
        GIT_NO_REPLACE_OBJECTS="1",
        GIT_ALLOW_PROTOCOL="",
        GIT_ATTR_NOSYSTEM="1",
        GIT_OPTIONAL_LOCKS="0",
        LC_ALL="C",
    )
    if not hook:
        env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    return env


def safe_argv(git_dir: str | None = None, *, keep: tuple[str, ...] = ()) -> list[str]:
    """``git`` and the options that come before the subcommand: no pager, no replace
    objects, every override except the keys in ``keep`` (which the caller must read as
    the repository sets them), then ``--git-dir``."""
    argv = ["git", "--no-pager", "--no-replace-objects"]
    for key, value in OVERRIDES:
        if key not in keep:
            argv += ["-c", f"{key}={value}"]
    if git_dir is not None:
        argv.append(f"--git-dir={git_dir}")
    return argv


# -- fetching from a remote nobody here controls -------------------------------------------------
#
# A mirror fetch is the one git call that talks to a remote. It keeps every override above
# except the transport keys, which it sets itself: https and ssh only (plain http only
# for a loopback test server, when the caller allows it), ssh in batch mode with no user
# configuration, no credential helper, no redirects, every received object checked, no
# submodules, and a transfer that stalls aborted. The repository's own content and refs
# are the remote's; nothing in them runs here (a bare mirror has no work tree, so no
# checkout filters, no hooks: core.hooksPath is /dev/null).

FETCH_SSH_COMMAND = "ssh -F /dev/null -o BatchMode=yes"
_FETCH_REPLACED = frozenset({"protocol.allow", "core.sshCommand"})


def fetch_overrides(*, allow_http: bool = False) -> tuple[tuple[str, str], ...]:
    """The transport settings of a mirror fetch (see above)."""
    return (
        ("protocol.allow", "never"),
        ("protocol.https.allow", "always"),
        ("protocol.ssh.allow", "always"),
        ("protocol.http.allow", "always" if allow_http else "never"),
        ("protocol.file.allow", "never"),
        ("protocol.ext.allow", "never"),
        ("protocol.git.allow", "never"),
        ("core.sshCommand", FETCH_SSH_COMMAND),
        ("ssh.variant", "ssh"),
        ("http.followRedirects", "false"),
        ("http.lowSpeedLimit", "1024"),
        ("http.lowSpeedTime", "60"),
        ("transfer.fsckObjects", "true"),
        ("fetch.fsckObjects", "true"),
        ("submodule.recurse", "false"),
        ("fetch.recurseSubmodules", "false"),
        ("fetch.writeCommitGraph", "false"),
        ("fetch.showForcedUpdates", "false"),
    )


def fetch_argv(git_dir: str, *, allow_http: bool = False) -> list[str]:
    """``git``, the target overrides and the fetch profile, then ``--git-dir``."""
    argv = safe_argv(None, keep=tuple(_FETCH_REPLACED))
    for key, value in fetch_overrides(allow_http=allow_http):
        argv += ["-c", f"{key}={value}"]
    return [*argv, f"--git-dir={git_dir}"]


def fetch_env(*, allow_http: bool = False) -> dict[str, str]:
    """The environment of a mirror fetch: a scan's (no GIT_* of ours, no system or global
    configuration, so no credential helper or url rewrite from the user's files), with
    the same protocol list as the command line (the variable wins over configuration)."""
    env = safe_env(hook=False)
    env["GIT_ALLOW_PROTOCOL"] = "https:ssh:http" if allow_http else "https:ssh"
    env["GIT_SSH_VARIANT"] = "ssh"
    env.pop("SSH_ASKPASS", None)
    return env
