"""Stopping a server a test started in its own session (``start_new_session=True``), workers included."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_group(proc: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM the process group led by ``proc`` (by its pid), then SIGKILL it if it outlives ``timeout``.

    The group is signalled even when its leader has exited: workers it left behind go too.
    """
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:  # the whole group is gone already
        proc.wait()
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)
