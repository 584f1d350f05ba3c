"""The MLproject file: six entry points over the autoice CLI, and one really run through `mlflow run`."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import yaml

from autoice.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = {
    "synth": {"out", "train", "test", "height", "width", "seed", "workers"},
    "prepare": {"raw", "output", "mode", "thresholds", "workers"},
    "train": {"data", "workdir", "preset", "epochs", "register"},
    "predict": {"model", "data", "output", "max_memory", "device"},
    "score": {"submission", "reference", "out", "bootstrap"},
    "demo": {"workdir", "train", "test", "height", "width", "seed"},
}


def test_mlproject_declares_the_six_entry_points():
    spec = yaml.safe_load((ROOT / "MLproject").read_text())
    assert spec["name"] == "autoice"
    assert not {"conda_env", "python_env", "docker_env"} & set(spec)  # runs in the current env (local)
    assert {name: set(ep["parameters"]) for name, ep in spec["entry_points"].items()} == ENTRY_POINTS


def test_mlflow_parses_it_and_every_command_parses_in_the_cli():
    from mlflow.projects._project_spec import load_project

    project = load_project(str(ROOT))
    for name, params in ENTRY_POINTS.items():
        ep = project.get_entry_point(name)
        assert set(ep.parameters) == params
        for key, param in ep.parameters.items():  # counts and sizes are typed numbers, checked by mlflow run
            numeric = isinstance(yaml.safe_load(str(param.default)), (int, float))
            assert param.type == ("float" if numeric else "string"), (name, key)
        assert set(re.findall(r"{(\w+)}", ep.command)) == params  # every parameter used, none undeclared
        defaults = {k: p.default for k, p in ep.parameters.items()}
        argv = shlex.split(ep.command.format(**{k: shlex.quote(str(v)) for k, v in defaults.items()}))
        assert argv[:2] == ["autoice", name]
        # click parses the command line with the defaults: the options exist and the values fit them
        with click.Context(cli) as ctx:
            command = cli.get_command(ctx, name)
            sub = command.make_context(name, argv[2:], parent=ctx)
            assert sub.params  # parsed, no UsageError


def test_mlflow_run_synth_entry_point(tmp_path):
    from mlflow import MlflowClient

    bindir = Path(sys.executable).parent
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    out = tmp_path / "data"
    cmd = [str(bindir / "mlflow"), "run", str(ROOT), "-e", "synth", "--env-manager", "local",
           "-P", f"out={out}", "-P", "train=1", "-P", "test=1", "-P", "height=32", "-P", "width=48"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list((out / "raw").glob("*.nc"))) == 2
    assert len(list((out / "train").glob("*_prep.nc"))) == 1
    assert len(list((out / "test").glob("*_prep_reference.nc"))) == 1
    runs = MlflowClient(tracking_uri=store).search_runs(["0"])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.params["height"] == "32" and runs[0].data.params["out"] == str(out)
