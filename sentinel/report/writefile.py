"""Writing a report file that only its owner can read.

Every report written with ``--output`` is created mode 0600, whether or not it holds
plaintext (``--show-secrets``): even a redacted report names where the secrets are and
carries their fingerprints, which confirm a guessed value offline. The file is written
to a temporary file in the same directory (created 0600 by ``mkstemp``) and renamed
over the target only when complete, so a reader never sees half a report and an
existing file's looser mode is not kept. A target that is not a regular file
(``/dev/stdout``, a FIFO a pipeline reads) is written in place.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


@contextlib.contextmanager
def write_private(path: Path) -> Iterator[TextIO]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        with open(path, "w", encoding="utf-8") as fh:
            yield fh
        return
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
