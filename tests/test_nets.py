"""gan_cli.nets: shapes per data kind, norms, the theta / gaussian generators, fit errors, determinism."""
from __future__ import annotations

import pytest
import torch
from scipy import stats
from torch import nn

from pathlib import Path

from omegaconf import OmegaConf

from gan_cli.build import instantiate_component
from gan_cli.config import UserError
from gan_cli.data import DataInfo

CONF = Path(__file__).resolve().parents[1] / "conf" / "net"

RING = DataInfo("ring8", "toy2d", (2,), 8, torch.zeros(8, 2), 0.01)
LINES = DataInfo("lines", "toy2d", (2,), 1)
MOG = DataInfo("mog1d", "toy1d", (1,), 2, torch.tensor([[-2.0], [2.0]]), 0.5)


def img(c, s):
    return DataInfo("img", "image", (c, s, s), 10)


def net(name, **kw):
    """conf/net/<name>.yaml (its schema's defaults for keys it does not set) with ``kw`` on top."""
    cfg = OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml"))
    cfg.pop("defaults", None)
    return {**cfg, **kw}


def build_nets(net_cfg, info, latent, d_norm, default_net="gan_cli.nets.mlp.build"):
    """What gan_cli.build.build_nets does, for a net config and a DataInfo without a whole run config."""
    G, D = instantiate_component(net_cfg, "net", info=info, latent_dim=latent, d_norm=d_norm, default_net=default_net)
    G.latent_dim = latent
    return G, D


def norms(module, kind):
    return [m for m in module.modules() if isinstance(m, kind)]


@pytest.mark.parametrize("info,latent", [(RING, 2), (LINES, 1), (MOG, 1), (img(1, 8), 16)])
def test_mlp_shapes(info, latent):
    G, D = build_nets(net("mlp", hidden=32, depth=3), info, latent, "batch")
    assert G.latent_dim == latent
    x = G(torch.randn(7, latent))
    assert x.shape == (7, *info.shape)
    assert D(x).shape == (7,)
    assert len(norms(D, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm))) == 0
    assert sum(isinstance(m, nn.Linear) for m in G.modules()) == 4  # 3 hidden layers + output
    assert sum(isinstance(m, nn.LeakyReLU) and m.negative_slope == 0.2 for m in D.modules()) == 3
    if info.kind == "image":
        assert x.abs().max() <= 1


@pytest.mark.parametrize("c,s", [(1, 28), (3, 32), (1, 8), (3, 8), (1, 32), (3, 28)])
@pytest.mark.parametrize("d_norm", ["batch", "layer", "none"])
def test_dcgan_shapes_and_norms(c, s, d_norm):
    G, D = build_nets(net("dcgan", channels=8), img(c, s), 10, d_norm)
    z = torch.randn(5, 10)
    x = G(z)
    assert x.shape == (5, c, s, s) and x.abs().max() <= 1
    assert D(x).shape == (5,)
    assert len(norms(G, nn.BatchNorm2d)) >= 2
    bn, gn = norms(D, nn.modules.batchnorm._BatchNorm), norms(D, (nn.GroupNorm, nn.LayerNorm))
    if d_norm == "none":
        assert bn == [] and gn == []
    elif d_norm == "layer":
        assert bn == [] and len(gn) >= 1 and all(isinstance(m, nn.GroupNorm) and m.num_groups == 1 for m in gn)
    else:
        assert len(bn) >= 1 and gn == []
        layers = list(D.net)
        assert isinstance(layers[0], nn.Conv2d) and isinstance(layers[1], nn.LeakyReLU)  # no norm on layer 1
    assert all(m.negative_slope == 0.2 for m in D.modules() if isinstance(m, nn.LeakyReLU))


def test_dcgan_dnorm_none_and_init():
    G, D = build_nets(net("dcgan", channels=64), img(3, 32), 100, "none")
    assert not norms(D, nn.modules.batchnorm._BatchNorm)
    w = torch.cat([m.weight.flatten() for m in list(G.modules()) + list(D.modules())
                   if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    assert w.mean().abs() < 1e-3 and w.std().item() == pytest.approx(0.02, rel=0.02)
    bnw = torch.cat([m.weight for m in G.modules() if isinstance(m, nn.BatchNorm2d)])
    assert bnw.mean().item() == pytest.approx(1.0, abs=0.01) and bnw.std().item() == pytest.approx(0.02, rel=0.2)


def test_dcgan_width_follows_channels():
    small = sum(p.numel() for p in build_nets(net("dcgan", channels=8), img(1, 28), 10, "batch")[0].parameters())
    big = sum(p.numel() for p in build_nets(net("dcgan", channels=16), img(1, 28), 10, "batch")[0].parameters())
    assert big > 2 * small


def test_dcgan_d_channels_narrows_d_alone():
    """net.d_channels sets D's width and leaves G's (PacGAN Table 3's weak discriminators); null: as channels."""
    def widths(m):
        return [c.out_channels for c in m.modules() if isinstance(c, (nn.Conv2d, nn.ConvTranspose2d))]
    G, D = build_nets(net("dcgan", channels=64), img(3, 28), 10, "batch")
    G4, D4 = build_nets(net("dcgan", channels=64, d_channels=16), img(3, 28), 10, "batch")
    assert widths(G4) == widths(G) == [128, 64, 3]
    assert widths(D) == [64, 128, 1] and widths(D4) == [16, 32, 1]
    x = torch.randn(5, 3, 28, 28)
    assert D4(x).shape == (5,)
    with pytest.raises(UserError, match=r"net.d_channels=0 must be >= 1"):
        build_nets(net("dcgan", d_channels=0), img(1, 28), 10, "batch")
    from gan_cli.config import validate
    from conftest import compose_train

    for over in (["net=dcgan"], []):  # net=auto carries the knob too (data=digits: the DCGAN nets)
        with pytest.raises(UserError, match=r"net.d_channels=0 is out of range: must be >= 1"):
            validate(compose_train("data=digits", *over, "net.d_channels=0"))
        validate(compose_train("data=digits", *over, "net.d_channels=16"))


def test_theta_generator_exact():
    G, D = build_nets(net("theta", theta0=0.75, hidden=16), LINES, 1, "batch")
    assert G.latent_dim == 1
    assert [n for n, _ in G.named_parameters()] == ["theta"]
    z = torch.randn(4000, 1, generator=torch.Generator().manual_seed(0))
    x = G(z)
    assert x.shape == (4000, 2)
    assert torch.equal(x[:, 0], torch.full((4000,), 0.75))
    assert torch.allclose(x[:, 1], torch.special.ndtr(z[:, 0]), atol=0, rtol=0)
    assert stats.kstest(x[:, 1].double().detach().numpy(), "uniform").pvalue > 1e-3
    x[:, 0].sum().backward()
    assert G.theta.grad.item() == pytest.approx(4000.0)
    G.zero_grad()
    out = D(G(z))
    assert out.shape == (4000,)
    out.mean().backward()
    assert G.theta.grad is not None and G.theta.grad.abs().item() > 0
    # a wider latent: only z_0 is used
    G3, _ = build_nets(net("theta", theta0=-1.0), LINES, 3, "none")
    z3 = torch.randn(5, 3)
    assert torch.equal(G3(z3)[:, 1], torch.special.ndtr(z3[:, 0])) and G3.latent_dim == 3


def test_gaussian_generator():
    G, D = build_nets(net("gaussian", mu0=1.5, sigma0=0.3, hidden=16), MOG, 1, "batch")
    assert G.sigma.item() == pytest.approx(0.3, abs=1e-7) and G.mu.item() == 1.5
    z = torch.randn(10, 1)
    x = G(z)
    assert x.shape == (10, 1) and torch.allclose(x, 1.5 + 0.3 * z, atol=1e-6)
    D(x).sum().backward()
    assert G.mu.grad is not None and G.log_sigma.grad is not None
    with torch.no_grad():
        G.log_sigma.fill_(-50.0)
    assert G.sigma.item() > 0  # positive parametrisation


@pytest.mark.parametrize("name,info,needle", [
    ("dcgan", RING, "needs image data"),
    ("dcgan", img(1, 20), "28x28"),
    ("dcgan", DataInfo("x", "image", (3, 32, 16)), "32x16"),
    ("theta", img(1, 28), "data=lines"),
    ("theta", MOG, "data=lines"),
    ("gaussian", RING, "1-D"),
    ("gaussian", img(3, 32), "1-D"),
])
def test_net_does_not_fit_data(name, info, needle):
    with pytest.raises(UserError) as e:
        build_nets(net(name), info, 4, "batch")
    text = str(e.value)
    assert "\n" not in text and needle in text


def test_auto_builds_the_data_sets_default_net_with_its_knobs():
    G, D = build_nets(net("auto", hidden=16, depth=2), RING, 2, "batch")
    assert type(G).__name__ == "MLPGenerator" and sum(isinstance(m, nn.Linear) for m in G.modules()) == 3
    assert all(m.out_features in (16, 2) for m in G.modules() if isinstance(m, nn.Linear))
    G, D = build_nets(net("auto", theta0=0.25), LINES, 1, "none", default_net="gan_cli.nets.toy.build_theta")
    assert type(G).__name__ == "ThetaGenerator" and G.theta.item() == 0.25
    G, D = build_nets(net("auto", channels=8), img(1, 28), 10, "layer", default_net="gan_cli.nets.dcgan.build")
    assert type(G).__name__ == "DCGANGenerator" and norms(D, nn.GroupNorm)


def test_bad_net_keys_and_norms():
    with pytest.raises(UserError, match="net.channels is not a parameter"):
        build_nets(net("mlp", channels=8), RING, 2, "batch")
    with pytest.raises(ValueError):
        build_nets(net("dcgan", channels=8), img(1, 28), 2, "spectral")
    with pytest.raises(UserError, match="cannot be imported"):
        build_nets({"_target_": "gan_cli.nets.nope.build", "name": "nope"}, RING, 2, "batch")


def test_deterministic_given_seed():
    def build():
        torch.manual_seed(123)
        return build_nets(net("dcgan", channels=8), img(1, 28), 10, "batch")

    (G1, D1), (G2, D2) = build(), build()
    for a, b in zip(list(G1.state_dict().values()) + list(D1.state_dict().values()),
                    list(G2.state_dict().values()) + list(D2.state_dict().values())):
        assert torch.equal(a, b)
    z = torch.randn(4, 10, generator=torch.Generator().manual_seed(0))
    G1.eval(), G2.eval()
    assert torch.equal(G1(z), G2(z))


# ----------------------------------------------------------------------------- net.codes / net.fourier (mlp)


def test_mlp_codes_read_one_of_k_embeddings_from_z0_equally_often():
    """net.codes=K: code floor(Phi(z_0) K); every code equally likely under z ~ N(0, I); G's output depends on
    z_0 only through the code; the other coordinates stay continuous inputs."""
    from gan_cli.nets.mlp import CodedLatent

    torch.manual_seed(0)
    G, _ = build_nets(net("mlp", hidden=16, codes=10, code_dim=4), RING, 3, "none")
    lat = next(m for m in G.modules() if isinstance(m, CodedLatent))
    assert lat.embed.num_embeddings == 10 and lat.embed.embedding_dim == 4
    assert G.net[0].in_features == 4 + 2  # code embedding + the 2 continuous coordinates
    z0 = torch.tensor([-10.0, stats.norm.ppf(0.0999), stats.norm.ppf(0.1001), 0.0, stats.norm.ppf(0.95), 10.0])
    assert lat.code(torch.stack([z0, z0], 1)).tolist() == [0, 0, 1, 5, 9, 9]
    counts = torch.bincount(lat.code(torch.randn(200_000, 3)), minlength=10).numpy()
    assert stats.chisquare(counts).pvalue > 1e-3  # uniform over the 10 codes
    z = torch.randn(4, 3)
    same = z.clone()
    same[:, 0] = torch.tensor(stats.norm.ppf((lat.code(z).numpy() + 0.5) / 10), dtype=torch.float32)  # same code
    torch.testing.assert_close(G(same), G(z))
    other = z.clone()
    other[:, 1] += 0.5  # a continuous coordinate moves the output
    assert not torch.allclose(G(other), G(z))
    G1, _ = build_nets(net("mlp", hidden=16, codes=5), RING, 1, "none")  # codes only: one point per code
    assert G1(torch.randn(50, 1)).unique(dim=0).shape[0] <= 5


def test_mlp_fourier_features_fade_in_between_from_and_to():
    """net.fourier=F: D reads [x, sin(a xB), cos(a xB)] with B ~ N(0, scale^2) (a buffer in the state dict),
    a = 0 before fourier_from, linear to 1 at fourier_to; at a = 0 the features are constant (0 and 1)."""
    from gan_cli.nets.mlp import FourierFeatures

    torch.manual_seed(0)
    _, D = build_nets(net("mlp", hidden=16, fourier=2000, fourier_scale=3.0, fourier_from=0.2, fourier_to=0.6),
                      RING, 2, "none")
    ff = next(m for m in D.modules() if isinstance(m, FourierFeatures))
    assert ff.B.shape == (2, 2000) and D.net[0].in_features == 2 + 2 * 2000
    assert ff.B.std().item() == pytest.approx(3.0, rel=0.05) and abs(ff.B.mean().item()) < 0.2
    assert "features.B" in D.state_dict() and "features.alpha" not in D.state_dict()
    assert [ff.alpha_at(u) for u in (0.0, 0.2, 0.4, 0.6, 1.0)] == pytest.approx([0, 0, 0.5, 1, 1])
    x = torch.randn(5, 2)
    ff.set_progress(0.1)
    out = ff(x)
    torch.testing.assert_close(out, torch.cat([x, torch.zeros(5, 2000), torch.ones(5, 2000)], 1))
    ff.set_progress(0.4)
    h = x @ ff.B * 0.5
    torch.testing.assert_close(ff(x), torch.cat([x, h.sin(), h.cos()], 1))
    assert FourierFeatures(2, 3, 1.0, 0.5, 0.5).alpha_at(0.49) == 0 and FourierFeatures(2, 3, 1.0, 0.5, 0.5).alpha_at(0.5) == 1
    with pytest.raises(UserError, match=r"net.fourier_from=0.7 and net.fourier_to=0.3 .* use 0 <= fourier_from <= fourier_to <= 1"):
        build_nets(net("mlp", fourier=4, fourier_from=0.7, fourier_to=0.3), RING, 2, "none")


# ----------------------------------------------------------------------------- the SNGAN ResNets


def test_resnet_at_32px_rgb_has_mimicrys_parameter_counts_and_spectral_norm_on_every_d_layer():
    """Mimicry's SNGAN-32 (G 3 up-blocks of 256, D 4 blocks of 128, z = 128): 4,276,739 and 1,053,825 parameters
    (torch_mimicry.nets.sngan.SNGANGenerator32 / SNGANDiscriminator32 counted the same way)."""
    from torch.nn.utils import parametrize

    G, D = build_nets(net("resnet"), img(3, 32), 128, "batch")  # d_norm does not apply: no norm layer in D
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert (count(G), count(D)) == (4_276_739, 1_053_825)
    layers = [m for m in D.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]  # 3 + 3 + 2 + 2 convs, 1 linear
    assert len(layers) == 11 and all(parametrize.is_parametrized(m, "weight") for m in layers)
    assert not norms(D, (nn.BatchNorm2d, nn.GroupNorm)) and len(norms(G, nn.BatchNorm2d)) == 7
    assert [type(b).__name__ for b in G.blocks] == ["GBlock"] * 3 and G.base == 4
    assert [b.down for b in D.blocks] == [True, True, False, False] and D.blocks[0].first
    _, D_plain = build_nets(net("resnet", spectral_norm=False), img(3, 32), 128, "none")
    assert not any(parametrize.is_parametrized(m) for m in D_plain.modules())


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("s", [28, 32, 48, 64, 128])
def test_resnet_sizes_and_channels(c, s):
    G, D = build_nets(net("resnet", g_channels=16, d_channels=16), img(c, s), 8, "none")
    G.eval()
    D.eval()
    x = G(torch.randn(2, 8), torch.tensor([0, 1]))
    assert x.shape == (2, c, s, s) and x.abs().max() <= 1
    out = D(x, None)
    assert out.shape == (2,) and torch.isfinite(out).all()
    base = {28: 7, 48: 6}.get(s, 4)
    assert G.base == base and base * 2 ** len(G.blocks) == s


def test_resnet_refuses_other_sizes_and_toy_data_in_one_line():
    for info, needle in ((img(1, 8), "net=resnet supports square images of 28x28, 32x32, 48x48, 64x64, 128x128 px"),
                         (RING, "net=resnet needs image data, but data=ring8 is toy2d")):
        with pytest.raises(UserError, match=needle) as e:
            build_nets(net("resnet"), info, 4, "none")
        assert "\n" not in str(e.value)
