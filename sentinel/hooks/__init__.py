"""Git hooks: block secrets at commit time (pre-commit, commit-msg) and at push time
(pre-receive), and install them into repositories.

Start-up is a hook's whole cost, so nothing here is imported by ``sentinel --help``
and ``sentinel hook ...`` is dispatched before the CLI framework loads (see
``sentinel.hooks.cli``).
"""

# The one git call that gives both views of a staged change: the raw list (blob ids,
# modes, renames) and the patch (which lines are added). Here, so that the hook can
# start it before importing anything heavy.
STAGED_DIFF = (
    "git",
    "-c",
    "core.quotePath=false",
    "diff",
    "--cached",
    "--patch-with-raw",
    "-U0",
    "-M",
    "--no-abbrev",
    "--full-index",
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--src-prefix=a/",
    "--dst-prefix=b/",
)
