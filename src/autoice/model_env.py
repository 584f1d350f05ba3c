"""What a logged model carries so that it loads where autoice is not installed: its source and its requirements.

The pyfunc wrapper (:class:`autoice.serving.AutoiceModel`) is pickled by reference to the ``autoice``
package, so a model is only self-contained if the package travels with it. It does, as MLflow's
``code_paths``: a copy of the package source (Python files and the ``resources/`` tables, no caches)
goes into the model's ``code/`` folder, which MLflow puts first on ``sys.path`` when it loads the
model. The alternative, a wheel of autoice as a pip requirement, needs a build step and an index or
file the serving machine can reach, and cannot be made from an installed copy; the source is the
same bytes the running process uses.

Requirements are autoice's runtime dependencies pinned to the installed versions (no inference at
log time). PyTorch is the one that needs care: on Linux, ``torch==X`` from PyPI is the CUDA build
(several GB of NVIDIA libraries), and CPU builds exist only on PyTorch's own index with a local
version label (``X+cpu``), which PyPI does not carry. So the requirements name the CPU index and
pin ``torch==X+cpu`` on Linux (PyPI's Windows and macOS wheels are already CPU builds):
``mlflow models serve``/``spark_udf`` with a virtualenv never pull CUDA by accident. A GPU server
installs the CUDA build of the same version itself and serves with ``--env-manager local``.
"""

from __future__ import annotations

import importlib.metadata
import shutil
from pathlib import Path

#: PyTorch's index of CPU-only wheels (local version label ``+cpu``).
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
#: Packages the cloudpickled wrapper needs besides autoice's own runtime dependencies.
EXTRA_REQUIREMENTS = ("cloudpickle",)
#: What of the package source is not shipped.
_IGNORED = ("__pycache__", "*.pyc", "*.pyo", ".*")


def package_dir() -> Path:
    """The folder of the ``autoice`` package this process runs (a checkout's ``src/autoice`` or site-packages)."""
    import autoice

    return Path(autoice.__file__).resolve().parent


def copy_package(into: Path) -> Path:
    """Copy the autoice package source into ``into/autoice`` (no caches); returns that folder for ``code_paths``."""
    dst = into / "autoice"
    shutil.copytree(package_dir(), dst, ignore=shutil.ignore_patterns(*_IGNORED))
    return dst


def torch_requirements(version: str) -> list[str]:
    """Requirement lines for PyTorch ``version`` that resolve to a CPU build on every platform.

    Any local label of the installed build (``+cpu``, ``+cu128``) is dropped first: the model does
    not depend on the build it was trained with.
    """
    base = version.split("+", 1)[0]
    return [f"--extra-index-url {TORCH_CPU_INDEX}", f'torch=={base}+cpu; sys_platform == "linux"',
            f'torch=={base}; sys_platform != "linux"']  # fmt: skip


def pip_requirements() -> list[str]:
    """The runtime dependencies of autoice pinned to the installed versions, with PyTorch as a CPU build.

    autoice itself is not a requirement: its source is shipped with the model (:func:`copy_package`).
    Optional dependencies (extras) are left out. Local version labels of other packages are dropped
    so the pins resolve on PyPI.
    """
    from packaging.requirements import Requirement

    names = []
    for spec in importlib.metadata.requires("autoice") or []:
        req = Requirement(spec)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # optional (dev, spark) dependencies
        names.append(req.name)
    names += [n for n in EXTRA_REQUIREMENTS if n not in names]
    lines: list[str] = []
    for name in names:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if name == "torch":
            lines = torch_requirements(version) + lines  # the index line first, as pip files have it
        else:
            lines.append(f"{name}=={version.split('+')[0]}")
    return lines
