"""The one-command demo on tiny scenes: every product it promises exists and is consistent."""

from __future__ import annotations

import json

from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from autoice import schema
from autoice.cli.main import cli
from autoice.submission import scene_shapes, validate_submission

TINY = ["train.epochs=1", "train.batches_per_epoch=2", "train.batch_size=4", "data.patch_size=32",
        "model.filters=[8, 8, 16]", "data.downscale=2"]  # fmt: skip


def test_demo_end_to_end(tmp_path):
    work = tmp_path / "demo"
    args = ["demo", "--workdir", str(work), "--train", "4", "--test", "2", "--height", "96", "--width", "128",
            "--quiet", *sum((["--set", s] for s in TINY), [])]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    scores = json.loads((work / "score.json").read_text())
    assert set(scores) >= {"SIC", "SOD", "FLOE", "combined"}
    assert scores["combined"] == round((2 * scores["SIC"] + 2 * scores["SOD"] + scores["FLOE"]) / 5, 3)
    test = work / "data" / "test"
    assert validate_submission(work / "upload_package.nc", scene_shapes(test)) == []
    assert len(list((work / "figures").glob("*.png"))) == 2
    html = (work / "report.html").read_text()
    assert "data:image/png;base64," in html and f"{scores['combined']:.3f}" in html
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("autoice", "champion")
    assert champion.run_id
    assert "mlflow ui --backend-store-uri sqlite:///" in res.output
    assert "upload_package.nc" in res.output and "report.html" in res.output
    gis = work / "gis"  # the predictions on a map: per scene and all together
    for key in scene_shapes(test):
        assert all((gis / f"{key}_{c}.tif").is_file() for c in schema.CHARTS)
    assert all((gis / f"mosaic_{c}.tif").is_file() for c in schema.CHARTS) and (gis / "mosaic.png").is_file()
    assert f"{gis}/mosaic.png" in res.output and 'id="mosaic"' in html and "no map of the" not in html
    for key in scene_shapes(test):
        assert key.endswith(schema.SERVICES)
