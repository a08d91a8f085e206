"""PacGAN's toy nets (net=pacgan: maxout D), the Table 1 presets and report, experiment=grid25_best."""
from __future__ import annotations

import math

import pytest
import torch
from conftest import compose_train

from gan_cli.build import build_data, build_nets, plain_config
from gan_cli.lab.pacgan_table import PAPER, mean_se, row_label
from gan_cli.nets.pacgan import LinearMaxout, PacGANDiscriminator, PacGANGenerator
from gan_cli.runs.results import Job
from gan_cli.training.step import DPath

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_maxout_is_the_max_over_pieces_of_one_linear_map_and_its_gradient_picks_the_winner():
    torch.manual_seed(0)
    layer = LinearMaxout(3, units=4, pieces=5)
    x = torch.randn(7, 3, requires_grad=True)
    y = layer(x)
    W, b = layer.linear.weight, layer.linear.bias  # (20, 3), (20,): row u * 5 + k is piece k of unit u
    pre = x @ W.T + b
    manual = torch.stack([pre[:, u * 5:(u + 1) * 5].max(dim=1).values for u in range(4)], dim=1)
    assert y.shape == (7, 4) and torch.allclose(y, manual)
    # d y[n, u] / d W: only the winning piece's row gets x[n]; the other four rows get nothing
    y[2, 1].backward()
    win = int(pre[2, 5:10].argmax()) + 5
    g = W.grad
    assert torch.allclose(g[win], x[2].detach()) and float(b.grad[win]) == 1.0
    assert float(g.abs().sum() - g[win].abs().sum()) == 0.0 and float(b.grad.abs().sum()) == 1.0
    # a hand-made unit: pieces x, -x, 0 -> max(x, -x, 0) = |x|
    hand = LinearMaxout(1, units=1, pieces=3)
    with torch.no_grad():
        hand.linear.weight.copy_(torch.tensor([[1.0], [-1.0], [0.0]]))
        hand.linear.bias.zero_()
    t = torch.linspace(-2, 2, 9)[:, None]
    assert torch.equal(hand(t), t.abs())


def test_pacgan_nets_have_the_papers_shapes_and_packing_widens_only_ds_input():
    G, D = PacGANGenerator(2, 2), PacGANDiscriminator(4)
    lin = [m for m in G.net if isinstance(m, torch.nn.Linear)]
    assert [tuple(m.weight.shape) for m in lin] == [(400, 2), (400, 400), (400, 400), (400, 400), (2, 400)]
    assert [m.bias is None for m in lin] == [True, True, True, True, False]  # batch norm supplies the shift
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in G.net) == 4 and sum(isinstance(m, torch.nn.ReLU) for m in G.net) == 4
    maxouts = [m for m in D.net if isinstance(m, LinearMaxout)]
    assert [(m.linear.in_features, m.units, m.pieces) for m in maxouts] == [(4, 200, 5), (200, 200, 5), (200, 200, 5)]
    n_d = (4 * 1000 + 1000) + 2 * (200 * 1000 + 1000) + (200 + 1)
    assert sum(p.numel() for p in D.parameters()) == n_d
    assert G(torch.randn(10, 2)).shape == (10, 2)
    # through the config: model.pack=3 builds D on 6 inputs and judges 100 triples of a 300-sample batch
    cfg = compose_train("experiment=pacgan_table", "experiment@_global_=pacgan_table_pac3", "data=grid25")
    Gc, Dc = build_nets(cfg, build_data(cfg.data).info)
    assert Dc.net[0].linear.in_features == 6 and DPath(Dc, pack=3)(torch.randn(300, 2)).shape == (100,)
    assert isinstance(Gc, PacGANGenerator) and Gc(torch.randn(300, 2)).shape == (300, 2)


def test_table_rows_compose_with_the_papers_settings():
    rows = {"gan": (1, 0, 100), "pac2": (2, 0, 200), "pac3": (3, 0, 300), "pac4": (4, 0, 400),
            "unrolled5": (1, 5, 100), "unrolled10": (1, 10, 100)}
    for row, (m, k, batch) in rows.items():
        cfg = compose_train("experiment=pacgan_table", f"experiment@_global_=pacgan_table_{row}", "data=grid25")
        assert cfg.experiment == "pacgan_table" and cfg.net.name == "pacgan" and cfg.model.name == "nsgan"
        k_cfg = cfg.reg.unrolled.steps if "unrolled" in cfg.reg else 0
        assert (cfg.model.pack, k_cfg, cfg.data.batch_size) == (m, k, batch)
        for opt in (cfg.model.opt_g, cfg.model.opt_d):
            assert (opt.name, opt.lr, opt.beta1, opt.beta2) == ("adam", 1e-4, 0.8, 0.999)
        assert cfg.data.latent_dim == 2 and cfg.metrics.num_samples == 2500 and cfg.metrics.suite == "toy"
        assert row_label(plain_config(cfg), {"experiment@_global_": f"pacgan_table_{row}"}) in (
            "GAN", f"PacGAN{m}", f"unrolled GAN K={k}")
    best = compose_train("experiment=pacgan_table", "experiment@_global_=pacgan_table_best", "data=ring8")
    own = compose_train("experiment=grid25_best")
    assert best.experiment == "pacgan_table" and best.data.name == "ring8" and own.data.name == "grid25"
    a, b = plain_config(best), plain_config(own)
    for key in ("model", "net", "ema", "steps"):  # the table's best row is grid25_best's recipe
        assert a[key] == b[key], key
    assert row_label(b) == "best recipe"


def test_mean_and_standard_error_and_the_papers_rows():
    assert mean_se([1.0, 2.0, 3.0, 6.0]) == (3.0, pytest.approx(math.sqrt(14 / 3) / 2))
    assert mean_se([5.0])[0] == 5.0 and math.isnan(mean_se([5.0])[1])
    assert math.isnan(mean_se([float("nan"), None])[0])
    assert PAPER[("grid25", "PacGAN4")] == ("24.8 ± 0.2", "93.6", "0.04") and len(PAPER) == 8


def test_grid25_best_composes_runs_a_few_steps_and_the_report_tabulates_it(tmp_path):
    from gan_cli.lab.pacgan_table import report
    from gan_cli.cli.train import train

    jobs = []
    for seed in (0, 1):
        out = tmp_path / f"s{seed}"
        cfg = compose_train("experiment=grid25_best", "steps=3", f"seed={seed}", "metrics.num_samples=200",
                            "device=cpu", tmp_path=out)
        res = train(cfg)
        assert res["status"] == "completed" and res["step"] == 3 and res["cpu_s"] > 0 and res["train_s"] > 0
        jobs.append(Job(dir=out, num=seed, overrides={}, config=plain_config(cfg), status="completed", results=res))
    out = report(jobs, tmp_path, None)
    (row,) = out["numeric"]
    assert row["method"] == "best recipe" and row["runs"] == 2 and row["steps"] == "3"
    vals = [j.results["metrics"]["modes_200"] for j in jobs]
    hq = [100 * j.results["metrics"]["hq_200"] for j in jobs]
    assert row["modes_mean"] == pytest.approx(sum(vals) / 2) and row["hq_mean"] == pytest.approx(sum(hq) / 2)
    assert row["modes_se"] == pytest.approx(abs(vals[0] - vals[1]) / 2)  # n = 2: s.e. = |a - b| / 2
    assert (tmp_path / "grid25_best.md").read_text().startswith("| data | method |")


@pytest.mark.slow
def test_grid25_best_reaches_the_goal_on_a_seed(tmp_path):
    """The preset as shipped (3,000 steps; about 50 CPU s at one thread): all 25 modes and >= 90 % high-quality
    samples of the EMA generator on 2,500 samples.  Seed 3, one of the five in the README's table."""
    from gan_cli.cli.train import train

    res = train(compose_train("experiment=grid25_best", "seed=3", "device=cpu", tmp_path=tmp_path))
    m = res["metrics"]
    assert res["status"] == "completed" and res["step"] == 3000
    assert m["modes_2.5k"] == 25 and m["hq_2.5k"] >= 0.9 and m["rkl_2.5k"] < 0.1, m
