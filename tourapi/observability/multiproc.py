"""prometheus_client multiprocess mode for ``tourapi serve --workers N``.

With several granian worker processes each keeps its own counters; in multiprocess mode every
worker writes its HTTP metrics and ping counters to memory-mapped files in one directory and
``/metrics`` (answered by any worker) adds them up. The directory must be chosen before
``prometheus_client`` is imported anywhere, so this module imports nothing from it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir() -> Path:
    """Use $PROMETHEUS_MULTIPROC_DIR (emptied of old metric files) or a fresh temporary directory.

    Call in the server's main process before the workers start. Files left by an earlier run would
    be added to this run's numbers, so existing ``*.db`` files in the directory are removed.
    """
    configured = os.environ.get(ENV) or os.environ.get(ENV.lower())
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
    else:
        path = Path(tempfile.mkdtemp(prefix="tourapi-metrics-"))
        atexit.register(_remove, path, os.getpid())
    os.environ[ENV] = str(path)
    return path


def _remove(path: Path, owner: int) -> None:
    if os.getpid() == owner:  # the server's main process, not a forked worker
        shutil.rmtree(path, ignore_errors=True)


def multiprocess_dir() -> str | None:
    return os.environ.get(ENV) or os.environ.get(ENV.lower()) or None
