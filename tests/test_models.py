"""Multi-task U-Net and its losses: shapes, masking, arithmetic, decoding, training, determinism."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from autoice import schema
from autoice.config import load_config
from autoice.errors import ConfigError
from autoice.models import (
    MultiTaskUNet,
    build_model,
    chart_losses,
    class_probabilities,
    dwa_weights,
    n_parameters,
    to_classes,
    water_consistency,
    weighted_loss,
)

FILL = schema.CHART_FILL
MODES = ("classification", "regression")


def _heads(sic_mode):
    return {c: (1 if c == "SIC" and sic_mode == "regression" else schema.N_CLASSES[c]) for c in schema.CHARTS}


def _outputs(sic_mode, b=2, h=5, w=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {c: torch.randn(b, k, h, w, generator=g, requires_grad=True) for c, k in _heads(sic_mode).items()}


def _targets(b=2, h=5, w=7, seed=1, p_fill=0.3):
    g = torch.Generator().manual_seed(seed)
    t = torch.stack([torch.randint(0, schema.N_CLASSES[c], (b, h, w), generator=g) for c in schema.CHARTS], 1)
    t[torch.rand(t.shape, generator=g) < p_fill] = FILL
    return t.to(torch.uint8)


# ----------------------------------------------------------------------------- network
@pytest.mark.parametrize("sic_mode", MODES)
@pytest.mark.parametrize("hw", [(32, 32), (37, 53), (24, 40), (1, 3)])
def test_output_shapes_any_size(sic_mode, hw):
    model = MultiTaskUNet(3, [4, 8, 8], sic_mode=sic_mode).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *hw))
    assert list(out) == list(schema.CHARTS)
    for chart, k in _heads(sic_mode).items():
        assert out[chart].shape == (2, k, *hw) and out[chart].dtype == torch.float32
        assert torch.isfinite(out[chart]).all()


def test_odd_size_trains_too():
    model = MultiTaskUNet(3, [4, 8], sic_mode="regression").train()
    x, y = torch.randn(2, 3, 37, 53), _targets(2, 37, 53)
    loss = weighted_loss(chart_losses(model(x), y, sic_mode="regression"), {c: 1.0 for c in schema.CHARTS})
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_padding_is_input_fill_then_crop():
    """A ragged scene edge is predicted as if the missing pixels were no-data (input fill 0)."""
    torch.manual_seed(0)
    model = MultiTaskUNet(3, [4, 8, 8]).eval()
    assert model.multiple == 8  # three halvings: two encoder levels down plus the bridge
    x = torch.randn(1, 3, 37, 53)
    padded = torch.full((1, 3, 40, 56), schema.INPUT_FILL)
    padded[..., :37, :53] = x
    with torch.no_grad():
        a, b = model(x), model(padded)
    for chart in schema.CHARTS:
        torch.testing.assert_close(a[chart], b[chart][..., :37, :53])


def test_bad_arguments():
    with pytest.raises(ConfigError, match="sic_mode"):
        MultiTaskUNet(3, [4, 8], sic_mode="ordinal")
    with pytest.raises(ConfigError, match="filters"):
        MultiTaskUNet(3, [])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        MultiTaskUNet(3, [4, 8])(torch.randn(1, 4, 16, 16))


@pytest.mark.parametrize("preset", ["baseline", "mmseaice"])
def test_build_model_from_presets(preset):
    cfg = load_config(preset)
    model = build_model(cfg)
    n = n_parameters(model)
    print(f"{preset}: {n:,} parameters")
    assert model.in_channels == len(cfg.data.inputs) and model.sic_mode == cfg.model.sic_mode
    assert model.heads["SIC"].out_channels == (1 if cfg.model.sic_mode == "regression" else 11)
    assert model.heads["SOD"].out_channels == 6 and model.heads["FLOE"].out_channels == 7
    assert 400_000 < n < 600_000  # the winner's network: ~0.5 M (spec section 8)
    assert n == sum(p.numel() for p in model.parameters())  # BN running stats are buffers, not counted


def test_deterministic_under_seed():
    x = torch.randn(2, 3, 20, 20)

    def run(seed):
        torch.manual_seed(seed)
        model = MultiTaskUNet(3, [4, 8, 8], sic_mode="regression")
        return model(x)

    a, b, c = run(0), run(0), run(1)
    for chart in schema.CHARTS:
        assert torch.equal(a[chart], b[chart])
    assert not torch.equal(a["SOD"], c["SOD"])


def test_few_steps_reduce_loss():
    torch.manual_seed(0)
    model = MultiTaskUNet(4, [8, 16], sic_mode="regression")
    x = torch.randn(2, 4, 16, 16)
    # Labels the inputs explain (sign of a channel), with some pixels unlabelled.
    y = torch.stack([(x[:, 0] > 0) * 10, (x[:, 1] > 0) * 3, (x[:, 2] > 0) * 5], 1).to(torch.uint8)
    y[:, :, :4] = FILL
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    history = []
    for _ in range(15):
        opt.zero_grad()
        losses = chart_losses(model(x), y, sic_mode="regression")
        weighted_loss(losses, {"SIC": 1.0, "SOD": 3.0, "FLOE": 3.0}).backward()
        opt.step()
        history.append({c: v.item() for c, v in losses.items()})
    for chart in schema.CHARTS:
        assert history[-1][chart] < 0.7 * history[0][chart], (chart, history)


# ----------------------------------------------------------------------------- losses
@pytest.mark.parametrize("sic_mode", MODES)
def test_ignored_pixels_do_not_count(sic_mode):
    out, y = _outputs(sic_mode), _targets()
    base = chart_losses(out, y, sic_mode=sic_mode)
    ignored = (y == FILL).unsqueeze(2)  # (B, 3, 1, H, W), broadcast over each head's K
    assert ignored.any()
    changed = {}
    for i, (chart, o) in enumerate(out.items()):
        # NaN only where the loss is an MSE: CE's backward is not NaN-proof at ignored pixels (nor needs to be).
        junk = torch.full_like(o, float("nan")) if o.shape[1] == 1 else o * 100 + 7
        changed[chart] = torch.where(ignored[:, i], junk, o).detach().requires_grad_()
    again = chart_losses(changed, y, sic_mode=sic_mode)
    for chart in schema.CHARTS:
        torch.testing.assert_close(again[chart], base[chart])
    weighted_loss(again, {c: 1.0 for c in schema.CHARTS}).backward()
    for chart, o in changed.items():
        assert torch.isfinite(o.grad).all()
        assert (o.grad * ignored[:, schema.CHARTS.index(chart)]).abs().sum() == 0


@pytest.mark.parametrize("sic_mode", MODES)
def test_fully_masked_chart_is_zero_and_others_learn(sic_mode):
    out, y = _outputs(sic_mode), _targets()
    y[:, schema.CHARTS.index("SOD")] = FILL
    losses = chart_losses(out, y, sic_mode=sic_mode)
    assert losses["SOD"].item() == 0.0 and losses["SOD"].requires_grad
    assert all(torch.isfinite(v) for v in losses.values())
    weighted_loss(losses, {"SIC": 1.0, "SOD": 3.0, "FLOE": 3.0}).backward()
    assert torch.count_nonzero(out["SOD"].grad) == 0
    assert torch.count_nonzero(out["SIC"].grad) > 0 and torch.count_nonzero(out["FLOE"].grad) > 0
    assert all(torch.isfinite(o.grad).all() for o in out.values())


def test_regression_mse_by_hand():
    out = {c: torch.zeros(1, k, 1, 3) for c, k in _heads("regression").items()}
    out["SIC"] = torch.tensor([[[[2.0, 5.5, -1.0]]]])
    y = torch.full((1, 3, 1, 3), FILL, dtype=torch.uint8)
    y[0, 0] = torch.tensor([[4, 5, FILL]], dtype=torch.uint8)
    loss = chart_losses(out, y, sic_mode="regression")["SIC"]
    assert loss.item() == pytest.approx(((2.0 - 4) ** 2 + (5.5 - 5) ** 2) / 2)


@pytest.mark.parametrize("sic_mode", MODES)
def test_cross_entropy_equals_torch_on_valid_pixels(sic_mode):
    out, y = _outputs(sic_mode, b=3, h=6, w=4), _targets(3, 6, 4)
    losses = chart_losses(out, y.long(), sic_mode=sic_mode)  # long targets work as well as uint8
    for i, chart in enumerate(schema.CHARTS):
        if chart == "SIC" and sic_mode == "regression":
            continue
        t = y[:, i].long()
        valid = t != FILL
        logits = out[chart].permute(0, 2, 3, 1)[valid]  # (N_valid, K)
        torch.testing.assert_close(losses[chart], F.cross_entropy(logits, t[valid]))


def test_water_consistency_by_hand_and_only_on_sic():
    """relu(SIC)^2 weighted by P_SOD(water) P_FLOE(water), over labelled pixels; the class heads get no gradient."""
    out = {c: torch.zeros(1, k, 1, 4) for c, k in _heads("regression").items()}
    out["SOD"][0, 0] = torch.tensor([[9.0, 9.0, -9.0, 9.0]])  # water, water, ice, water
    out["FLOE"][0, 0] = torch.tensor([[9.0, -9.0, 9.0, 9.0]])  # water, ice, water, water
    out["SIC"] = torch.tensor([[[[3.0, 3.0, 3.0, 5.0]]]], requires_grad=True)
    for c in ("SOD", "FLOE"):
        out[c].requires_grad_(True)
    y = torch.zeros((1, 3, 1, 4), dtype=torch.uint8)
    y[:, :, 0, 3] = FILL  # outside the scene: no label in any chart
    loss = water_consistency(out, y, sic_mode="regression")
    assert loss.item() == pytest.approx(9.0 / 3, rel=5e-3)  # both heads say water at pixel 0 only; 3 labelled
    loss.backward()
    assert out["SIC"].grad[0, 0, 0, 0] > 0 and out["SIC"].grad[0, 0, 0, 3] == 0
    assert out["SOD"].grad is None and out["FLOE"].grad is None
    out["SIC"] = torch.tensor([[[[-2.0, 3.0, 3.0, 5.0]]]])  # below 0 is already water: nothing to pull
    assert water_consistency(out, y, sic_mode="regression").item() == pytest.approx(0.0, abs=1e-3)
    cls = {**out, "SIC": torch.zeros(1, 11, 1, 4)}
    assert water_consistency(cls, y, sic_mode="classification").item() == pytest.approx(math.log(11) / 3, rel=5e-3)


def test_weighted_loss_arithmetic():
    losses = {"SIC": torch.tensor(0.5), "SOD": torch.tensor(2.0), "FLOE": torch.tensor(4.0)}
    total = weighted_loss(losses, {"SIC": 1.0, "SOD": 3.0, "FLOE": 0.5})
    assert total.item() == pytest.approx(0.5 + 6.0 + 2.0)
    assert weighted_loss({"SOD": torch.tensor(2.0)}, {"SIC": 9.0, "SOD": 3.0}).item() == pytest.approx(6.0)
    with pytest.raises(ValueError, match="FLOE"):
        weighted_loss(losses, {"SIC": 1.0, "SOD": 1.0})


def test_dwa_weights_follow_the_loss_ratios():
    base = {"SIC": 1.0, "SOD": 3.0, "FLOE": 3.0}
    rec = lambda sic, sod, floe: {"train_loss_SIC": sic, "train_loss_SOD": sod, "train_loss_FLOE": floe}  # noqa: E731
    assert dwa_weights([], base, temperature=2.0) == base
    assert dwa_weights([rec(1, 1, 1)], base, temperature=2.0) == base  # one epoch: no ratio yet
    same = dwa_weights([rec(2, 2, 2), rec(1, 1, 1)], base, temperature=2.0)
    assert same == pytest.approx(base)  # equal ratios: the base weights
    # SIC halved, SOD stalled, FLOE fell by a quarter: ratios 0.5, 1, 0.75
    w = dwa_weights([rec(2, 1, 4), rec(1, 1, 3)], base, temperature=2.0)
    e = [math.exp(0.25), math.exp(0.5), math.exp(0.375)]
    expected = [3 * v / sum(e) for v in e]
    assert [w["SIC"], w["SOD"] / 3, w["FLOE"] / 3] == pytest.approx(expected)
    assert w["SOD"] / 3 > w["FLOE"] / 3 > w["SIC"]  # the stalled chart gains most
    assert sum([w["SIC"], w["SOD"] / 3, w["FLOE"] / 3]) == pytest.approx(3.0)
    sharp = dwa_weights([rec(2, 1, 4), rec(1, 1, 3)], base, temperature=0.1)
    assert sharp["SOD"] / 3 > w["SOD"] / 3  # a lower temperature sharpens the weighting
    assert dwa_weights([rec(0, 1, 1), rec(1, 1, 1)], base, temperature=2.0) == base  # zero loss: no ratio


# ----------------------------------------------------------------------------- decoding
def test_to_classes_regression_rounds_half_even_and_clips():
    out = {c: torch.zeros(1, k, 1, 8) for c, k in _heads("regression").items()}
    out["SIC"] = torch.tensor([[[[-0.7, 10.6, 4.5, 5.5, 3.49, 0.5, 99.0, float("nan")]]]])
    out["SOD"][0, 4, 0, 2] = 1.0
    classes = to_classes(out, sic_mode="regression")
    assert classes["SIC"].dtype == torch.uint8 and classes["SIC"].shape == (1, 1, 8)
    assert classes["SIC"].flatten().tolist() == [0, 10, 4, 6, 3, 0, 10, 0]
    assert classes["SOD"].flatten().tolist() == [0, 0, 4, 0, 0, 0, 0, 0]


def test_to_classes_and_probabilities_classification():
    out = _outputs("classification", b=2, h=3, w=4)
    classes = to_classes(out, sic_mode="classification")
    probs = class_probabilities(out, sic_mode="classification")
    for chart in schema.CHARTS:
        assert classes[chart].dtype == torch.uint8 and classes[chart].shape == (2, 3, 4)
        assert torch.equal(classes[chart].long(), out[chart].argmax(1))
        assert probs[chart].shape == out[chart].shape
        torch.testing.assert_close(probs[chart].sum(1), torch.ones(2, 3, 4))
        assert torch.equal(probs[chart].argmax(1), out[chart].argmax(1))


def test_probabilities_regression_sic_is_raw_value():
    out = _outputs("regression")
    probs = class_probabilities(out, sic_mode="regression")
    assert probs["SIC"].shape == (2, 5, 7) and torch.equal(probs["SIC"], out["SIC"][:, 0])
    torch.testing.assert_close(probs["FLOE"].sum(1), torch.ones(2, 5, 7))
    with pytest.raises(ValueError, match="sic_mode"):
        to_classes(out, sic_mode="ordinal")


def test_regression_loss_is_float32_for_half_outputs():
    """Under AMP the head may be half precision; 10**2 x many pixels must not overflow float16."""
    out = {c: torch.zeros(1, k, 128, 128, dtype=torch.float16) for c, k in _heads("regression").items()}
    y = torch.zeros(1, 3, 128, 128, dtype=torch.uint8)
    y[:, 0] = 10
    losses = chart_losses(out, y, sic_mode="regression")
    assert losses["SIC"].dtype == torch.float32 and losses["SIC"].item() == pytest.approx(100.0)


def test_class_weights_inverse_sqrt():
    """Rare classes weigh more, 1 / sqrt(share); mean weight over the training pixels is 1; capped; absent = 1."""
    from autoice.models import losses as L

    w = L.class_weights({"SOD": [900, 100, 0], "FLOE": [10**9, 1, 5]})
    sod = w["SOD"].double()
    assert sod[1] / sod[0] == pytest.approx(3.0)  # shares 0.9 / 0.1: sqrt(9)
    assert float(sod[0] * 0.9 + sod[1] * 0.1) == pytest.approx(1.0)
    assert float(sod[2]) == 1.0  # never in a target
    assert float(w["FLOE"].max()) == 10.0  # a one-in-a-billion class does not take over the loss


def test_weighted_cross_entropy_equals_torch(sic_mode="regression"):
    out, y = _outputs(sic_mode, b=3, h=6, w=4), _targets(3, 6, 4, p_fill=0.2)
    weights = {c: torch.rand(schema.N_CLASSES[c], generator=torch.Generator().manual_seed(5)) + 0.5
               for c in ("SOD", "FLOE")}  # fmt: skip
    losses = chart_losses(out, y, sic_mode=sic_mode, weights=weights)
    plain = chart_losses(out, y, sic_mode=sic_mode)
    torch.testing.assert_close(losses["SIC"], plain["SIC"])  # regression SIC is not weighted
    for i, chart in ((1, "SOD"), (2, "FLOE")):
        t = y[:, i].long()
        valid = t != FILL
        logits = out[chart].permute(0, 2, 3, 1)[valid]
        want = F.cross_entropy(logits, t[valid], weight=weights[chart], reduction="sum") / valid.sum()
        torch.testing.assert_close(losses[chart], want)
        assert not torch.allclose(losses[chart], plain[chart])
    with pytest.raises(ValueError, match="SOD: 2 class weights"):
        chart_losses(out, y, sic_mode=sic_mode, weights={"SOD": torch.ones(2)})
