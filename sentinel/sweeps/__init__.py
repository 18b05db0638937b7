"""Organisation-wide sweeps and what they stand on: bare mirrors of remote repositories
with remembered tips (mirrors), the checks on a remote URL before git sees it (urls)."""
