"""Every MLflow call of the project: tracking store, run lifecycle, params, metrics, artifacts.

By default a run's store lives in its workdir: ``sqlite:///<workdir>/mlflow.db`` with artifacts in
``<workdir>/mlartifacts``; ``MLFLOW_TRACKING_URI`` set by the user wins. Only rank 0 of a
distributed run tracks; the other ranks get a :class:`NullTracker`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

EXPERIMENT = "autoice"


def tracking_uri(workdir: str | os.PathLike[str]) -> str:
    """The tracking URI for a workdir (``MLFLOW_TRACKING_URI`` wins)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{Path(workdir).resolve() / 'mlflow.db'}"


def artifact_root(uri: str) -> str | None:
    """Artifact root for a new experiment: ``mlartifacts/`` beside a local sqlite store, else the server's."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///") :]).resolve().parent / "mlartifacts").as_uri()
    return None


def local_store_fault(store_uri: str) -> str | None:
    """Why a local MLflow store cannot be read as it is (a missing db file or folder, not MLflow's), or None.

    Reading through MLflow would create a missing store (an empty sqlite database, a new folder) and
    then report the model as not found, so resolving a model checks first. SQLite files are opened
    read-only here; remote stores (http, databricks, postgresql, ...) are not checked.
    """
    from urllib.parse import unquote, urlparse

    if store_uri.startswith("sqlite:"):
        rest = store_uri[len("sqlite:") :]
        if not rest.startswith("//"):
            return None  # not a URL form SQLAlchemy reads as a file; MLflow will say what is wrong
        raw = unquote(rest[3:].split("?", 1)[0]) if rest.startswith("///") else ""
        if raw in ("", ":memory:"):
            return None  # in-memory database: nothing on disk to create
        return _sqlite_fault(Path(raw).absolute())
    if store_uri in ("databricks", "databricks-uc", "uc"):
        return None  # hosted stores named without a scheme
    scheme = urlparse(store_uri).scheme
    if scheme in ("file", ""):  # a file store: a folder
        folder = Path(unquote(urlparse(store_uri).path) if scheme == "file" else store_uri).absolute()
        if not folder.is_dir():
            return f"no such folder {folder}"
    return None


def _sqlite_fault(path: Path) -> str | None:
    import sqlite3

    if not path.exists():
        return f"no such file {path}"
    if not path.is_file():
        return f"{path} is not a file"
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.OperationalError:
        return None  # locked or unreadable right now: MLflow gives its own error, and creates nothing
    except sqlite3.DatabaseError:
        return f"{path} is not an MLflow store (not an SQLite database)"
    if "experiments" not in tables:
        return f"{path} is not an MLflow store (no MLflow tables)"
    return None


def git_commit() -> str:
    """The current git commit of the working directory, or 'unknown'."""
    with contextlib.suppress(Exception):
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
        if out.returncode == 0:
            return out.stdout.strip()
    return "unknown"


def _store_lock(uri: str) -> contextlib.AbstractContextManager[Any]:
    """Serialize the start of runs on a local sqlite store.

    Two runs creating one store at once break it for good (MLflow's schema migration is not safe
    against a concurrent one).
    """
    from autoice.locks import hold

    if not uri.startswith("sqlite:///"):
        return contextlib.nullcontext()
    db = Path(uri[len("sqlite:///") :])
    return hold(db.parent, "MLflow store set-up", wait=True, name=f".{db.name}.lock")


def _store_name(uri: str) -> str:
    return uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else uri


@contextlib.contextmanager
def store_errors(uri: str) -> Iterator[None]:
    """Turn a failing MLflow store (full or read-only disk, broken database) into one line."""
    import errno

    from autoice.errors import AutoiceError, OutputError

    try:
        yield
    except AutoiceError:
        raise
    except Exception as exc:
        text = str(exc).strip()
        low = text.lower()
        code = exc.errno if isinstance(exc, OSError) else None
        if "disk is full" in low or code in (errno.ENOSPC, errno.EDQUOT):
            raise OutputError(_store_name(uri), "MLflow store cannot be written: no space left on the device"
                              ) from exc  # fmt: skip
        if "readonly database" in low or "read-only" in low or code == errno.EROFS:
            raise OutputError(_store_name(uri), "MLflow store cannot be written: read-only") from exc
        first = text.splitlines()[0][:300] if text else type(exc).__name__
        raise AutoiceError(f"{_store_name(uri)}: MLflow store error: {first}") from exc


class NullTracker:
    """Tracker of non-zero ranks: does nothing."""

    run_id: str | None = None

    def log_params(self, params: Mapping[str, Any]) -> None:  # noqa: D102
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:  # noqa: D102
        pass

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:  # noqa: D102
        pass

    def set_tags(self, tags: Mapping[str, str]) -> None:  # noqa: D102
        pass

    def end(self, status: str = "FINISHED") -> None:  # noqa: D102
        pass


class Tracker(NullTracker):
    """One MLflow run (created, or resumed by id)."""

    def __init__(self, workdir: str | os.PathLike[str], *, run_id: str | None = None, run_name: str | None = None,
                 tags: Mapping[str, str] | None = None, experiment: str = EXPERIMENT) -> None:  # fmt: skip
        from mlflow.tracking import MlflowClient

        self.uri = tracking_uri(workdir)
        with _store_lock(self.uri), store_errors(self.uri):
            self.client = MlflowClient(tracking_uri=self.uri)
            self._start(run_id, run_name, tags, experiment)

    def _start(self, run_id: str | None, run_name: str | None, tags: Mapping[str, str] | None, experiment: str
               ) -> None:  # fmt: skip
        if run_id is not None:
            self.run_id = run_id
            self.client.update_run(run_id, status="RUNNING")
        else:
            exp = self.client.get_experiment_by_name(experiment)
            if exp is None:
                exp_id = self.client.create_experiment(experiment, artifact_location=artifact_root(self.uri))
            else:
                exp_id = exp.experiment_id
            run = self.client.create_run(exp_id, tags=dict(tags or {}), run_name=run_name)
            self.run_id = run.info.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params (values stringified); already-logged params are skipped on resume."""
        from mlflow.entities import Param

        with store_errors(self.uri):
            existing = self.client.get_run(self.run_id).data.params
            items = [Param(k, str(v)[:6000]) for k, v in params.items() if k not in existing]
            for i in range(0, len(items), 100):
                self.client.log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Log a dict of metrics at a step."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        with store_errors(self.uri):
            self.client.log_batch(self.run_id, metrics=items)

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Copy a file into the run's artifacts."""
        with store_errors(self.uri):
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Set run tags."""
        with store_errors(self.uri):
            for k, v in tags.items():
                self.client.set_tag(self.run_id, k, v)

    def end(self, status: str = "FINISHED") -> None:
        """Mark the run finished (or FAILED / KILLED)."""
        with store_errors(self.uri):
            self.client.set_terminated(self.run_id, status=status)
