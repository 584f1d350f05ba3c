"""Every MLflow call of the project: tracking store, run lifecycle, params, metrics, artifacts.

By default a run's store lives in its workdir: ``sqlite:///<workdir>/mlflow.db`` with artifacts in
``<workdir>/mlartifacts``; ``MLFLOW_TRACKING_URI`` set by the user wins. Only rank 0 of a
distributed run tracks; the other ranks get a :class:`NullTracker`.

Runs go through MLflow's fluent API (``mlflow.start_run``), so its standard variables work as MLflow
users expect: ``MLFLOW_EXPERIMENT_NAME`` (default experiment ``autoice``), ``MLFLOW_RUN_ID`` (log into
that run, as ``mlflow run`` does), ``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING`` (``system/*`` metrics), and
the ``mlflow.user`` / ``mlflow.source.*`` tags. The store is pointed at with the public
``mlflow.set_tracking_uri`` / ``mlflow.set_registry_uri`` for the run's lifetime and put back after
(:func:`use_store`). Commands that read models find their store with :func:`model_store_uri`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

EXPERIMENT = "autoice"


def tracking_uri(workdir: str | os.PathLike[str]) -> str:
    """The tracking URI for a workdir (``MLFLOW_TRACKING_URI`` wins)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{Path(workdir).resolve() / 'mlflow.db'}"


#: MLflow URI schemes that name a logged model (resolved in a tracking/registry store).
MODEL_URI_SCHEMES = ("models:/", "runs:/")


def model_store_uri(explicit: str | None, models: Sequence[str | os.PathLike[str]]) -> str | None:
    """The store that commands reading models (predict, serve) resolve ``models:/``/``runs:/`` URIs in.

    In order: ``--tracking-uri``; ``MLFLOW_TRACKING_URI`` (returned as None: MLflow reads the variable
    itself, and an error names it); the ``mlflow.db`` of a training workdir given as a model; None
    when no model needs a store (checkpoints, model folders); else an error asking for
    ``--tracking-uri``: MLflow's own default (``./mlflow.db``) would be a store in the current folder,
    not the one the model was registered in.
    """
    from autoice.errors import ConfigError

    if explicit:
        return explicit
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return None
    for spec in models:
        db = Path(spec) / "mlflow.db"
        if not str(spec).startswith(MODEL_URI_SCHEMES) and db.is_file():
            return f"sqlite:///{db.resolve()}"
    named = [str(m) for m in models if str(m).startswith(MODEL_URI_SCHEMES)]
    if named:
        raise ConfigError(f"{named[0]}: which MLflow store is it in? pass --tracking-uri (the training run's "
                          "store, e.g. sqlite:///WORKDIR/mlflow.db or http://HOST:5000) or set MLFLOW_TRACKING_URI")
    return None


@contextlib.contextmanager
def use_store(uri: str | None) -> Iterator[None]:
    """Point MLflow's fluent API (tracking and registry) at ``uri`` for a block, then put the old state back.

    The registry follows ``MLFLOW_REGISTRY_URI`` when the user set it (MLflow's rule), else ``uri``. Only
    public API: ``mlflow.set_tracking_uri``/``set_registry_uri`` also export the URI to the environment,
    so a URI set before (in the process or the shell) is in the environment. After the block both are
    unset (``None``: follow the environment) and the environment is put back as it was, which gives
    the same URIs as before without copying a variable of the moment into MLflow's process state.
    """
    if uri is None:
        yield
        return
    import mlflow

    env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(env["MLFLOW_REGISTRY_URI"] or uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        for k, v in env.items():  # set_tracking_uri(None) unset the variable, set_registry_uri(None) did not
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def is_local_store(uri: str) -> bool:
    """Whether ``mlflow ui --backend-store-uri`` can open the store (a local sqlite file or folder)."""
    from urllib.parse import urlparse

    return uri.startswith("sqlite:///") or urlparse(uri).scheme in ("file", "")


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


def git_commit(folder: str | os.PathLike[str] | None = None) -> str:
    """The git commit of autoice's own checkout (the folder of its source), or 'unknown'.

    Not the current folder: a run started from elsewhere would record another project's commit. An
    installed copy (site-packages inside some other repository) is 'unknown' too: the package's
    ``__init__.py`` must be a file tracked by the repository.
    """
    here = Path(folder) if folder is not None else Path(__file__).resolve().parent
    with contextlib.suppress(Exception):
        tracked = subprocess.run(["git", "-C", str(here), "ls-files", "--error-unmatch", "__init__.py"],
                                 capture_output=True, text=True, timeout=5, check=False)  # fmt: skip
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)  # fmt: skip
        if tracked.returncode == 0 and out.returncode == 0:
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
    """Turn a failing MLflow store (full or read-only disk, broken database) into one line.

    On a local store, SIGINT/SIGTERM wait until the call is done: raised inside a sqlite write, the
    interrupt left the transaction's lock held, and ending the run KILLED then failed with "database is
    locked" (exit 1 instead of 143). A server's requests are not held: its retries can take minutes.
    """
    import errno

    from autoice.errors import AutoiceError, OutputError
    from autoice.interrupts import deferred

    held = contextlib.nullcontext() if uri.startswith(("http://", "https://")) else deferred()
    try:
        with held:
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
        down = unreachable(text)
        if down is not None:
            raise AutoiceError(f"{uri}: cannot reach the MLflow tracking server ({down})") from exc
        first = text.splitlines()[0][:300] if text else type(exc).__name__
        raise AutoiceError(f"{_store_name(uri)}: MLflow store error: {first}") from exc


def unreachable(text: str) -> str | None:
    """The reason in an MLflow REST error that says the server could not be reached at all, or None.

    MLflow reports it as a whole urllib3 retry chain; the reason (``Connection refused``, ``Name or
    service not known``, a timeout) is what a user can act on.
    """
    import re

    if "Max retries exceeded" not in text and "Failed to establish a new connection" not in text:
        return None
    m = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if m:
        return m.group(1).strip()
    return "timed out" if "timed out" in text.lower() else "no connection"


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
    """One MLflow run through the fluent API: created, resumed by id, or the one ``MLFLOW_RUN_ID`` names.

    The run is the active run until :meth:`end`; the store stays pointed at (:func:`use_store`) until
    then too, and MLflow's global state is put back after. A run started while another is active (a
    caller's ``mlflow.start_run``) is nested under it.
    """

    def __init__(self, uri: str, *, run_id: str | None = None, run_name: str | None = None,
                 tags: Mapping[str, str] | None = None, input_tables: Sequence[tuple[Any, str]] = ()
                 ) -> None:  # fmt: skip
        import mlflow

        self.uri = uri
        self._state = contextlib.ExitStack()
        self._state.enter_context(use_store(uri))
        try:
            with _store_lock(uri), store_errors(uri):
                # a resume reopens its run as it is; a run named by MLFLOW_RUN_ID (``mlflow run``) is new
                # to autoice and gets its tags and inputs, in that run's experiment
                resuming = run_id is not None
                given = resuming or bool(os.environ.get("MLFLOW_RUN_ID"))
                active = mlflow.active_run()
                run = mlflow.start_run(run_id=run_id, experiment_id=None if given else self._experiment_id(),
                                       run_name=None if given else run_name,
                                       tags=None if resuming else dict(tags or {}),
                                       nested=active is not None)  # fmt: skip
                self.run_id = run.info.run_id
                if not resuming:
                    with warnings.catch_warnings():  # MLflow's hint that integer columns cannot hold NaN
                        warnings.simplefilter("ignore", UserWarning)
                        for dataset, context in input_tables:
                            mlflow.log_input(dataset, context=context)
        except BaseException:
            self._state.close()
            raise

    def _experiment_id(self) -> str:
        """``MLFLOW_EXPERIMENT_ID``, else the experiment ``MLFLOW_EXPERIMENT_NAME`` (default autoice).

        A new experiment gets its artifacts beside a local sqlite store.
        """
        import mlflow

        if os.environ.get("MLFLOW_EXPERIMENT_ID"):
            return os.environ["MLFLOW_EXPERIMENT_ID"]
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
        client = mlflow.MlflowClient(tracking_uri=self.uri)
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        return client.create_experiment(name, artifact_location=artifact_root(self.uri))

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params (values stringified); already-logged params are skipped on resume."""
        import mlflow

        with store_errors(self.uri):
            existing = mlflow.get_run(self.run_id).data.params
            items = {k: str(v)[:6000] for k, v in params.items() if k not in existing}
            keys = list(items)
            for i in range(0, len(keys), 100):  # a server takes at most 100 per request
                mlflow.log_params({k: items[k] for k in keys[i : i + 100]})

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Log a dict of metrics at a step."""
        import mlflow

        with store_errors(self.uri):
            mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Copy a file into the run's artifacts."""
        import mlflow

        with store_errors(self.uri):
            mlflow.log_artifact(str(path), artifact_path)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Set run tags."""
        import mlflow

        with store_errors(self.uri):
            mlflow.set_tags(dict(tags))

    def end(self, status: str = "FINISHED") -> None:
        """End the run FINISHED, FAILED or KILLED, then put MLflow's global state back.

        MLflow prints "View run ... at: URL" to stdout when a run on a server ends; stdout is for the
        command's own output, so that is silenced (the CLI prints the run's URL to stderr itself).
        """
        import mlflow

        saved = os.environ.get("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT")
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
        try:
            with store_errors(self.uri):
                active = mlflow.active_run()
                if active is not None and active.info.run_id == self.run_id:
                    mlflow.end_run(status)
                else:
                    mlflow.MlflowClient(tracking_uri=self.uri).set_terminated(self.run_id, status=status)
        finally:
            if saved is None:
                os.environ.pop("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", None)
            else:
                os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = saved
            self._state.close()

    def run_url(self) -> str | None:
        """The run's page on a tracking server (http/https stores), else None."""
        if not self.uri.startswith(("http://", "https://")):
            return None
        import mlflow

        with store_errors(self.uri):
            exp = mlflow.MlflowClient(tracking_uri=self.uri).get_run(self.run_id).info.experiment_id
        return f"{self.uri.rstrip('/')}/#/experiments/{exp}/runs/{self.run_id}"
