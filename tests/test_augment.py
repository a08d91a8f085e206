"""Augmentations for image GANs: DiffAugment (against the authors' code on the same draws) and ADA (the
bgc pipeline's properties, the p heuristic, p in the checkpoint and a resumed run ending as the straight one)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from conftest import compose_train, interrupted_and_resumed, load_file_module, run_cli

from gan_cli.augment.ada import ADA
from gan_cli.augment.diffaugment import DiffAugment
from gan_cli.config import UserError

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- DiffAugment


def _fixed(pipe, gen):
    """The pipe with its draws frozen: every call takes the same random numbers, a fixed map of the image."""
    state = gen.get_state()

    def f(inp):
        gen.set_state(state)
        return pipe(inp)

    return f


def _authors():
    """mit-han-lab/data-efficient-gans DiffAugment_pytorch.py, vendored unchanged in benchmarks/third_party."""
    return load_file_module(REPO / "benchmarks" / "third_party" / "DiffAugment_pytorch.py")


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout", "translation,color"])
@pytest.mark.parametrize("channels,size", [(3, 32), (1, 28), (3, 9)])
def test_diffaugment_matches_the_authors_code_on_the_same_draws(policy, channels, size):
    """The authors' functions draw from torch's global generator; seeded as the pipe's own, the draws are the same
    and so must be every pixel."""
    x = torch.rand(6, channels, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    ours = DiffAugment(policy).bind(torch.Generator().manual_seed(7))(x)
    with torch.random.fork_rng(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # their torch.meshgrid without indexing=
        torch.manual_seed(7)
        theirs = _authors().DiffAugment(x, policy)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_diffaugment_translation_pads_with_zeros_pixel_by_pixel():
    """The translation restated pixel by pixel: out[a, b] = x[a + tx, b + ty] inside the image, 0 outside."""
    x = torch.rand(3, 2, 8, 8, dtype=torch.float64) + 1  # no zeros of its own
    pipe = DiffAugment("translation").bind(torch.Generator().manual_seed(2))
    out = pipe(x)
    g = torch.Generator().manual_seed(2)
    tx, ty = torch.randint(-1, 2, (3, 1, 1), generator=g), torch.randint(-1, 2, (3, 1, 1), generator=g)
    for i in range(3):
        for a in range(8):
            for b in range(8):
                sa, sb = a + int(tx[i]), b + int(ty[i])
                want = x[i, :, sa, sb] if 0 <= sa < 8 and 0 <= sb < 8 else torch.zeros(2, dtype=x.dtype)
                assert torch.equal(out[i, :, a, b], want)


def test_diffaugment_is_differentiable_and_its_ranges_are_the_papers():
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64) * 2 - 1
    gen = torch.Generator().manual_seed(3)
    assert torch.autograd.gradcheck(_fixed(DiffAugment().bind(gen), gen), (x.requires_grad_(True),))
    bright = DiffAugment("color").bind(torch.Generator().manual_seed(0))
    shifts = bright.brightness(torch.zeros(4000, 1, 1, 1)).flatten()
    assert shifts.min() >= -0.5 and shifts.max() < 0.5 and abs(float(shifts.mean())) < 0.02
    with pytest.raises(UserError, match="augment.policy=colour: use a comma-separated list of color"):
        DiffAugment("colour")


# ----------------------------------------------------------------------------- ADA


@pytest.mark.parametrize("channels", [3, 1])
def test_ada_at_p0_is_the_identity_and_its_transforms_are_affine_and_differentiable(channels):
    x = torch.rand(5, channels, 16, 16, dtype=torch.float64) * 2 - 1
    assert torch.equal(ADA(p=0.0).bind(torch.Generator().manual_seed(0))(x), x)  # nothing applied, bit for bit
    gen = torch.Generator().manual_seed(4)
    f = _fixed(ADA(p=1.0).bind(gen), gen)
    a, b = torch.rand_like(x), torch.rand_like(x)
    # resampling is linear in the image and the colour matrix affine: T(0.3 a + 0.7 b) = 0.3 T(a) + 0.7 T(b)
    torch.testing.assert_close(f(0.3 * a + 0.7 * b), 0.3 * f(a) + 0.7 * f(b), rtol=1e-9, atol=1e-9)
    assert not torch.allclose(f(a), a)  # at p = 1 every image changes
    small = (torch.rand(1, channels, 6, 6, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    g2 = torch.Generator().manual_seed(5)
    f2 = _fixed(ADA(p=1.0).bind(g2), g2)
    assert torch.autograd.gradcheck(f2, (small,))
    assert torch.autograd.gradgradcheck(f2, (small,))  # R1 through the pipe needs the double backward


def test_ada_blit_transforms_move_pixels_exactly():
    """An x-flip, a quarter turn and an integer shift (the 'b' of bgc) land every pixel on a pixel: a single
    bright pixel moves to where the integer transform sends it, with no blur."""
    from gan_cli.augment.ada import _rotate_inv, _scale_inv

    x = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    x[0, 0, 1, 2] = 1.0
    for G, expect in ((_scale_inv(-torch.ones(1), torch.ones(1)), (1, 5)),  # x-flip: column 2 -> 5
                      (_rotate_inv(-torch.tensor([torch.pi / 2])), None)):
        grid = torch.nn.functional.affine_grid(G[:, :2, :].double(), [1, 1, 8, 8], align_corners=False)
        y = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        assert y.sum().item() == pytest.approx(1.0, abs=1e-6) and y.max().item() == pytest.approx(1.0, abs=1e-6)  # float32 matrices
        if expect is not None:
            assert y[0, 0, expect[0], expect[1]].item() == pytest.approx(1.0, abs=1e-6)


def test_ada_heuristic_moves_p_by_the_images_seen_over_ada_kimg_every_interval():
    pipe = ADA(target=0.6, interval=4, ada_kimg=1.0)  # 1000 images from p = 0 to p = 1
    for i in range(1, 21):  # batches of 50 on which D calls every real image real: r_t = 1 > 0.6
        pipe.observe(torch.ones(50))
        want = 0.2 * (i // 4)  # every 4th batch: + 200 / 1000
        assert float(pipe.p) == pytest.approx(want, abs=1e-6), i
    assert float(pipe.p) == pytest.approx(1.0) and float(pipe.rt) == 1.0  # 1000 images: 0 -> 1
    for _ in range(4):
        pipe.observe(torch.ones(50))
    assert float(pipe.p) == 1.0  # clamped
    for _ in range(4):
        pipe.observe(-torch.ones(30))  # D fooled: r_t = -1 < target, p goes down by 120 / 1000
    assert float(pipe.p) == pytest.approx(0.88, abs=1e-6) and float(pipe.rt) == -1.0
    mixed = ADA(interval=2, ada_kimg=1.0)
    mixed.observe(torch.tensor([1.0, 1.0, -1.0, 1.0]))  # r_t over the interval: (3 - 1 + 2) / 8 = 0.5 < 0.6
    mixed.observe(torch.tensor([1.0, 1.0, -1.0, 1.0]) * 2)
    assert float(mixed.rt) == 0.5 and float(mixed.p) == 0.0  # 0 - 8/1000, clamped at 0
    fixed = ADA(p=0.3)
    for _ in range(8):
        fixed.observe(torch.ones(50))
    assert float(fixed.p) == pytest.approx(0.3) and set(fixed.log_scalars()) == {"augment/p", "augment/rt"}
    with pytest.raises(UserError, match=r"augment.p=1.5 must be in \[0, 1\]"):
        ADA(p=1.5)


def test_ada_state_round_trips_p_and_the_random_stream():
    a = ADA(interval=1, ada_kimg=0.1).bind(torch.Generator().manual_seed(1))
    a.observe(torch.ones(10))
    x = torch.rand(3, 3, 8, 8)
    state = a.state_dict()
    b = ADA(interval=1, ada_kimg=0.1).bind(torch.Generator().manual_seed(99))
    b.load_state_dict(state)
    assert float(b.p) == float(a.p) == pytest.approx(0.1)
    assert torch.equal(a(x), b(x))  # the same p and the same draws


def test_ada_p_is_logged_checkpointed_and_a_resumed_run_ends_as_the_straight_one(tmp_path):
    args = ["data=digits", "net=dcgan", "net.channels=8", "augment=ada", "augment.ada_kimg=0.5", "augment.interval=1",
            "steps=10", "log_every=2", "ckpt_every=0", "metrics=none", "progress=false", "device=cpu",
            "image_every=0"]
    a, mid, b = interrupted_and_resumed(args, tmp_path, at_step=5)
    assert mid["step"] == 5 and 0 <= float(mid["augment"]["p"]) <= 1 and "rt" in mid["augment"]
    assert float(a["augment"]["p"]) == float(b["augment"]["p"]) > 0
    for net in ("generator", "discriminator"):
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), (net, k)
    logged = [json.loads(line) for line in (tmp_path / "full" / "scalars.jsonl").read_text().splitlines()]
    ps = [r["augment/p"] for r in logged]
    assert len(ps) == 5 and max(ps) > 0  # p moved from 0 (D tells the real digits apart at once)
    assert all(-1 <= r["augment/rt"] <= 1 for r in logged)


def test_augment_p_fixes_p_through_the_cli_config():
    from gan_cli.build import build_augment, build_data

    cfg = compose_train("data=digits", "augment=ada", "augment.p=0.3")
    pipe = build_augment(cfg.augment, build_data(cfg.data, "cpu").info)
    assert float(pipe.p) == pytest.approx(0.3) and not pipe.adaptive


@pytest.mark.parametrize("aug", ["diffaugment", "ada"])
def test_an_image_augmentation_on_toy_data_is_one_line_and_writes_nothing(aug, tmp_path):
    r = run_cli("gan-train", [f"augment={aug}", "steps=2", f"out_dir={tmp_path / 'run'}"], tmp_path)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode != 0 and len(lines) == 1, r.stderr
    assert f"augment={aug} augments image data, and data=ring8 is toy2d data: use augment=none" in lines[0]
    assert not (tmp_path / "run" / "checkpoints").exists()
