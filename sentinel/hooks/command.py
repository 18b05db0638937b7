"""How a hook names Sentinel in the commands it tells a person to run.

The pre-commit framework runs the hook from its own environment
(``~/.cache/pre-commit/...``): ``sentinel`` is on PATH while the hook runs (the
framework puts the environment's ``bin`` first) but not in the shell of the person
reading the message. Under the framework (``PRE_COMMIT`` set), or when no ``sentinel``
on PATH is this installation's, the command names this interpreter instead:
``'/path/to/python' -m sentinel``, which works from any shell.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path


def sentinel_command() -> str:
    """``sentinel``, or the quoted ``python -m sentinel`` of this installation."""
    if not os.environ.get("PRE_COMMIT"):
        found = shutil.which("sentinel")
        own = Path(sys.executable).parent / "sentinel"
        if found is not None and (not own.exists() or _same(Path(found), own)):
            return "sentinel"
    return f"{shlex.quote(sys.executable)} -m sentinel"


def _same(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False
