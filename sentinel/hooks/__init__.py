"""Git hooks: block secrets at commit time (pre-commit, commit-msg) and at push time
(pre-receive), and install them into repositories.

Start-up is a hook's whole cost, so nothing here is imported by ``sentinel --help``
and ``sentinel hook ...`` is dispatched before the CLI framework loads (see
``sentinel.hooks.cli``).
"""
