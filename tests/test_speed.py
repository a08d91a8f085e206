"""The speed path (gan_cli.training.speed, ``speed.*``): each switch on the CPU, agreement with float32, the
gradient penalty under torch.compile, bad combinations refused, and no host sync in the hot loop.

Tolerances (stated, measured on the CPU with margin):
  * bf16 autocast vs float32, one step from the same weights: losses within 2% relative (1e-4 absolute near 0); the update
    of every tensor (plain SGD, so update = lr * gradient) with cosine similarity > 0.99 to float32's
    and norm within 5%.  bf16 keeps 8 mantissa bits (relative rounding 2^-9 ~ 0.2% per operation).
  * channels_last, fused/foreach Adam, compile: float32 arithmetic reordered only: 1e-5.
  * gradient penalty through a compiled D (eager ``D._orig_mod``) vs the eager D: 1e-6.
Tests marked ``gpu`` need CUDA and are skipped here (benchmarks/gpu_check.sh runs them on a GPU).
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from conftest import compose_train
from omegaconf import OmegaConf
from torch import nn

from gan_cli.config import SpeedConfig, UserError
from gan_cli.objectives.wgan import Wasserstein
from gan_cli.regularizers.base import inner_grad_scale, input_grad
from gan_cli.regularizers.gp import GradientPenalty, gradient_penalty
from gan_cli.training.speed import compiler_missing, resolve

PKG = Path(__file__).resolve().parents[1] / "gan_cli"
CUDA = torch.cuda.is_available()


def speed_cfg(**kw):
    return OmegaConf.merge(OmegaConf.structured(SpeedConfig), kw)


def trainer(tmp_path, *overrides, device="cpu"):
    from gan_cli.training.loop import build_trainer

    cfg = compose_train(*overrides, f"device={device}", "metrics=none", "image_every=0", tmp_path=tmp_path)
    return build_trainer(cfg, tmp_path)


def params(m: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in m.parameters()]


# ----------------------------------------------------------------------------- resolution and refusals


@pytest.mark.parametrize("device,kind,conv,expect", [
    ("cpu", "image", True, (None, False, "default", None)),
    ("cpu", "toy2d", False, (None, False, "default", None)),
    ("cuda", "image", True, (torch.bfloat16, True, "fused", True)),
    ("cuda", "toy2d", False, (None, False, "fused", None)),  # tiny MLPs: precision kept, nothing to lay out
])
def test_auto_resolves_per_device_and_data(monkeypatch, device, kind, conv, expect):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    p = resolve(speed_cfg(), torch.device(device), kind, conv)
    assert (p.amp, p.channels_last, p.optim, p.tf32) == expect
    assert not p.compile and p.compile_mode is None  # compile is opt-in


def test_auto_skips_bf16_on_a_gpu_without_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve(speed_cfg(), torch.device("cuda"), "image", True).amp is None


@pytest.mark.parametrize("kw,device,conv,guard,needle", [
    ({"amp": "fp16"}, "cpu", True, "stop", "speed.amp=fp16 needs a CUDA device"),
    ({"amp": "fp16"}, "cuda", True, "skip", "guard.on_nonfinite=skip"),
    ({"amp": "half"}, "cpu", True, "stop", "speed.amp=half is not one of"),
    ({"cuda_graphs": True}, "cuda", True, "stop", "needs speed.compile=true"),
    ({"cuda_graphs": True, "compile": True, "compile_backend": "aot_eager"}, "cpu", True, "stop", "needs a CUDA device"),
    ({"compile": True, "compile_mode": "reduce-overhead"}, "cuda", True, "stop", "set speed.cuda_graphs=true"),
    ({"cuda_graphs": True, "compile": True, "compile_mode": "max-autotune"}, "cuda", True, "stop", "uses speed.compile_mode"),
    ({"tf32": "on"}, "cpu", True, "stop", "speed.tf32=on needs a CUDA device"),
    ({"channels_last": "on"}, "cpu", False, "stop", "no 2-D convolutions"),
    ({"optimizer": "fast"}, "cpu", True, "stop", "speed.optimizer=fast is not one of"),
])
def test_bad_combinations_are_one_line(kw, device, conv, guard, needle):
    with pytest.raises(UserError) as e:
        resolve(speed_cfg(**kw), torch.device(device), "image", conv, guard)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_bool_words_are_accepted_for_switches():
    p = resolve(speed_cfg(channels_last="true", optimizer="foreach", amp="off"), torch.device("cpu"), "image", True)
    assert p.channels_last and p.optim == "foreach" and p.amp is None


def test_missing_compiler_is_refused_in_one_line(monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    assert "C++ compiler" in compiler_missing("inductor", "cpu")
    assert compiler_missing("aot_eager", "cpu") is None
    with pytest.raises(UserError, match="speed.compile=true: .*C\\+\\+ compiler"):
        resolve(speed_cfg(compile=True), torch.device("cpu"), "image", True)


def test_trainer_refuses_fp16_on_the_cpu(tmp_path):
    with pytest.raises(UserError, match="speed.amp=fp16 needs a CUDA device"):
        trainer(tmp_path, "speed.amp=fp16")


# ----------------------------------------------------------------------------- switches on the CPU


def one_step(tmp_path, *overrides):
    """(loss_d, loss_g, per-tensor updates of D and G) of one train step from the seed's initial weights."""
    tr = trainer(tmp_path, "data=digits", "data.batch_size=32", "net.channels=8", "model.opt_d.name=sgd",
                 "model.opt_g.name=sgd", "model.opt_d.lr=0.01", "model.opt_g.lr=0.01", *overrides)
    d0, g0 = params(tr.D), params(tr.G)
    tr.train_step(False)
    n = tr.acc["n"]
    upd = [a - b for a, b in zip(params(tr.D) + params(tr.G), d0 + g0)]
    return float(tr.acc["loss/d"] / n), float(tr.acc["loss/g"] / n), upd, tr


@pytest.mark.parametrize("model", ["nsgan", "wgan_gp"])
def test_bf16_autocast_trains_on_the_cpu_and_agrees_with_fp32(tmp_path, model, one_torch_thread):
    extra = ["model.d_norm=none"] if model == "wgan_gp" else []
    ld, lg, ref, _ = one_step(tmp_path / "fp32", f"model={model}", *extra)
    ld16, lg16, upd, tr = one_step(tmp_path / "bf16", f"model={model}", *extra, "speed.amp=bf16")
    assert tr.speed.plan.amp is torch.bfloat16
    assert ld16 == pytest.approx(ld, rel=2e-2, abs=1e-4) and lg16 == pytest.approx(lg, rel=2e-2, abs=1e-4)
    for a, b in zip(upd, ref):
        assert a.dtype == torch.float32  # parameters (and their updates) stay float32
        if not b.any():  # e.g. the critic's last bias: no gradient under a Wasserstein loss
            assert not a.any()
            continue
        cos = torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0)
        assert cos > 0.99 and float(a.norm()) == pytest.approx(float(b.norm()), rel=5e-2)
    # and it keeps training: a few more bf16 steps stay finite
    for _ in range(3):
        tr.train_step(False)
    assert torch.isfinite(tr.acc["loss/d"]) and all(torch.isfinite(p).all() for p in tr.D.parameters())


@pytest.mark.parametrize("override", ["speed.channels_last=on", "speed.optimizer=foreach", "speed.optimizer=fused"])
def test_exact_switches_agree_with_the_default(tmp_path, override, one_torch_thread):
    ld, lg, ref, _ = one_step(tmp_path / "ref", "model.opt_d.name=adam")
    ld2, lg2, upd, tr = one_step(tmp_path / "on", "model.opt_d.name=adam", override)
    if "channels_last" in override:
        conv = next(m for m in tr.D.modules() if isinstance(m, nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    else:
        key = override.rsplit("=", 1)[1]
        assert tr.opt_d.param_groups[0][key] is True and tr.opt_g.param_groups[0][key] is True  # Adam, SGD
    assert ld2 == pytest.approx(ld, rel=1e-5) and lg2 == pytest.approx(lg, rel=1e-5)
    for a, b in zip(upd, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_resume_reapplies_the_optimizer_choice(tmp_path, one_torch_thread):
    """Optimizer.load_state_dict takes fused/foreach from the saved groups: the speed path puts the plan back."""
    from gan_cli.training.loop import build_trainer

    tr = trainer(tmp_path / "a", "speed.optimizer=fused", "model.n_critic=1", "data.batch_size=16")
    tr.train_step(False)
    state = tr.state_dict()
    cfg = compose_train("device=cpu", "metrics=none", "speed.optimizer=off", "data.batch_size=16", tmp_path=tmp_path / "b")
    tr2 = build_trainer(cfg, tmp_path / "b", resume_state=state)
    assert tr2.opt_d.param_groups[0]["fused"] is None and tr2.opt_d.param_groups[0]["foreach"] is None
    tr2.train_step(False)


# ----------------------------------------------------------------------------- inner gradients under fp16


def test_input_grad_unscales_the_inner_gradient():
    """Under fp16 autocast an input gradient of ~3e-9 underflows to 0 (products of two 1e-5 weights); scaled by S
    before the inner backward and divided by S after (input_grad under inner_grad_scale) it is float32's again."""
    torch.manual_seed(0)
    D = nn.Sequential(nn.Linear(4, 16), nn.Linear(16, 1))
    with torch.no_grad():
        for layer in D:
            layer.weight.mul_(1e-4)
    x = torch.randn(8, 4, requires_grad=True)
    ref = input_grad(D(x), x)
    with torch.autocast("cpu", dtype=torch.float16):
        plain = input_grad(D(x), x)
        with inner_grad_scale(torch.tensor(2.0 ** 14)):
            scaled = input_grad(D(x), x)
    assert ref.abs().max() > 0 and plain.abs().max() == 0  # fp16 lost it
    torch.testing.assert_close(scaled, ref, rtol=0, atol=1e-2 * float(ref.detach().abs().max()))


def test_wgan_gp_penalty_is_the_same_with_a_scale():
    """With a scale and no autocast the penalty and its parameter gradients are float32's (S cancels exactly)."""
    torch.manual_seed(1)
    D = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    real, fake = torch.randn(6, 3), torch.randn(6, 3)
    out = []
    for scale in (None, torch.tensor(256.0)):
        D.zero_grad()
        with inner_grad_scale(scale):
            gp = gradient_penalty(D, real, fake, torch.Generator().manual_seed(0))
        gp.backward()
        out.append((gp.detach(), [p.grad.clone() for p in D.parameters() if p.grad is not None]))
    torch.testing.assert_close(out[0][0], out[1][0], rtol=1e-6, atol=0)
    for a, b in zip(out[0][1], out[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-8)


# ----------------------------------------------------------------------------- torch.compile


def gp_grads(D, call, seed=0):
    """(penalty, gradients of D's parameters) of WGAN-GP's D loss with ``call`` as the module on the path into D."""
    from gan_cli.training.step import DPath, discriminator_loss

    real = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    fake = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(seed + 1))
    D.zero_grad(set_to_none=True)
    path = DPath(call, generator=torch.Generator().manual_seed(7))
    loss, _ = discriminator_loss(Wasserstein(), {"gp": GradientPenalty(10.0)}, path, real, None, fake, None)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in D.parameters()]


def small_critic():
    from gan_cli.nets.dcgan import DCGANDiscriminator

    torch.manual_seed(3)
    return DCGANDiscriminator((1, 8, 8), channels=4, d_norm="none")


@pytest.mark.parametrize("backend", [
    "aot_eager",  # aot_autograd without code generation: the same double-backward limit, no compiler needed
    pytest.param("inductor", marks=[pytest.mark.slow, pytest.mark.skipif(
        compiler_missing("inductor", "cpu") is not None, reason=str(compiler_missing("inductor", "cpu")))]),
])
def test_gradient_penalty_under_compile_equals_eager(backend, one_torch_thread):
    D = small_critic()
    compiled = torch.compile(D, backend=backend)
    x = torch.randn(4, 1, 8, 8, requires_grad=True)
    # why the penalty goes through D._orig_mod: a compiled D cannot be differentiated twice.  aot_autograd says so
    # as "does not currently support double backward", or (inductor with a cold compile cache) as its donated
    # buffers requiring create_graph=False
    with pytest.raises(RuntimeError, match="double backward|create_graph=False"):
        torch.autograd.grad(compiled(x).sum(), x, create_graph=True)[0].pow(2).sum().backward()
    loss_e, grads_e = gp_grads(D, D)
    loss_c, grads_c = gp_grads(D, compiled)
    torch.testing.assert_close(loss_c, loss_e, rtol=1e-6, atol=1e-6)
    for a, b in zip(grads_c, grads_e):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def compiled_vs_eager(tmp_path, backend, model, steps):
    runs = []
    for compile_on in (False, True):
        tr = trainer(tmp_path / str(compile_on), f"model={model}", "net.hidden=16", "net.depth=2", "data.batch_size=16",
                     *(["reg=[r1]", "reg.r1.gamma=1"] if model == "nsgan" else []),
                     f"speed.compile={str(compile_on).lower()}", f"speed.compile_backend={backend}")
        assert (tr.speed.D is not tr.D) == compile_on
        for _ in range(steps):
            tr.train_step(False)
        runs.append((tr.acc["loss/d"].clone(), tr.acc["loss/g"].clone(), params(tr.D) + params(tr.G)))
        assert not any(k.startswith("_orig_mod") for k in tr.state_dict()["discriminator"])  # checkpoints stay plain
    (ld, lg, p), (ld2, lg2, p2) = runs
    torch.testing.assert_close(ld2, ld, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(lg2, lg, rtol=1e-5, atol=1e-6)
    for a, b in zip(p2, p):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model", ["wgan_gp", "nsgan"])  # the penalty; R1 (nsgan + reg=[r1]): both double-backward
def test_compiled_training_matches_eager_aot(tmp_path, model, one_torch_thread):
    compiled_vs_eager(tmp_path, "aot_eager", model, steps=2)


@pytest.mark.slow
@pytest.mark.skipif(compiler_missing("inductor", "cpu") is not None, reason=str(compiler_missing("inductor", "cpu")))
def test_compile_with_inductor_runs_on_the_cpu(tmp_path, one_torch_thread):
    """Real code generation (C++ on the CPU): one tiny MLP WGAN-GP, 2 steps, the same losses and weights as eager."""
    compiled_vs_eager(tmp_path, "inductor", "wgan_gp", steps=2)


# ----------------------------------------------------------------------------- no host syncs in the hot loop

SYNCS = ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__")


@contextmanager
def host_reads():
    """Record every Tensor.item/tolist/numpy/bool/float/int/index called from gan_cli's own code.

    On the CPU nothing is a device sync, but these are the calls that are one on a GPU (torch's own
    internals are not counted: Adam's step counter is a CPU tensor by design).  The GPU test below uses
    torch.cuda.set_sync_debug_mode, which catches every sync."""
    calls: list[str] = []
    state = {"paused": 0}
    originals = {name: getattr(torch.Tensor, name) for name in SYNCS}

    def wrap(name, fn):
        def method(self, *a, **k):
            frame = sys._getframe(1)
            if not state["paused"] and str(PKG) in frame.f_code.co_filename:
                calls.append(f"Tensor.{name} at {Path(frame.f_code.co_filename).name}:{frame.f_lineno} "
                             f"({frame.f_code.co_name})")
            return fn(self, *a, **k)
        return method

    for name, fn in originals.items():
        setattr(torch.Tensor, name, wrap(name, fn))
    try:
        yield calls, state
    finally:
        for name, fn in originals.items():
            setattr(torch.Tensor, name, fn)


def run_between_log_steps(tr, monkeypatch, state):
    """Run ``tr`` with the recorder paused inside the periodic tasks (logging, guard, pictures, evaluation,
    checkpoints) and the end of the run only."""
    from gan_cli.training import tasks

    def pause(owner, name):
        fn = getattr(owner, name)

        def paused(*a, _fn=fn, **k):
            state["paused"] += 1
            try:
                return _fn(*a, **k)
            finally:
                state["paused"] -= 1
        monkeypatch.setattr(owner, name, paused)

    for cls in (tasks.Logging, tasks.Guard, tasks.Pictures, tasks.Evaluation, tasks.Checkpoints):
        pause(cls, "run")
    for name in ("checked_save", "_saved_now", "_log_hparams"):
        pause(tr, name)
    return tr.run()


HOT = [
    ("nsgan", []), ("gan", []), ("hinge", []), ("wgan", ["model.warmup_critic_steps=0"]), ("wgan_gp", []),
    ("fgan", ["model.divergence=kl"]), ("nsgan", ["reg=[r1]", "reg.r1.gamma=1", "reg.r1.every=2"]),
    ("nsgan", ["reg=[instance_noise]", "reg.instance_noise.steps=5"]), ("nsgan", ["reg=[unrolled]", "reg.unrolled.steps=1"]),
    ("nsgan", ["model.pack=2"]), ("nsgan", ["ema.beta=0.9"]), ("nsgan", ["speed.amp=bf16"]),
]


@pytest.mark.parametrize("model,extra", HOT, ids=[f"{m}{'-' + e[0] if e else ''}" for m, e in HOT])
def test_no_host_reads_between_log_steps(tmp_path, monkeypatch, model, extra, one_torch_thread):
    tr = trainer(tmp_path, f"model={model}", *extra, "net.hidden=16", "net.depth=2", "data.batch_size=16",
                 "steps=6", "log_every=3", "ckpt_every=4", "estimate_batch=16")
    with host_reads() as (calls, state):
        result = run_between_log_steps(tr, monkeypatch, state)
    assert result["step"] == 6
    assert calls == []


def test_the_recorder_sees_the_skip_guard_sync(tmp_path, monkeypatch, one_torch_thread):
    """guard.on_nonfinite=skip checks every step's loss and gradients on the host by design (documented in
    Trainer._skip_bad): the recorder must see it, or it would see nothing."""
    tr = trainer(tmp_path, "guard.on_nonfinite=skip", "net.hidden=16", "net.depth=2", "data.batch_size=16",
                 "steps=2", "log_every=2", "estimate_batch=16")
    import inspect

    from gan_cli.training.loop import Trainer

    lines, first = inspect.getsourcelines(Trainer._skip_bad)
    where = {f"loop.py:{n}" for n in range(first, first + len(lines))}
    with host_reads() as (calls, state):
        run_between_log_steps(tr, monkeypatch, state)
    assert calls and all(c.split(" at ")[1].split(" ")[0] in where for c in calls), calls


# ----------------------------------------------------------------------------- GPU only (benchmarks/gpu_check.sh)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("extra", [[], ["speed.compile=true"], ["speed.compile=true", "speed.cuda_graphs=true"]])
@pytest.mark.parametrize("model", ["nsgan", "wgan_gp"])
def test_gpu_hot_loop_has_no_device_sync(tmp_path, model, extra):
    tr = trainer(tmp_path, f"model={model}", "data=digits", "data.batch_size=64", *extra, device="cuda")
    plan = tr.speed.plan
    assert plan.amp is torch.bfloat16 and plan.channels_last and plan.optim == "fused" and plan.tf32
    for _ in range(3):  # warm-up: compilation, cuDNN autotuning, lazy optimizer state
        tr.train_step(False)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            tr.train_step(False)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()
    assert torch.isfinite(tr.acc["loss/d"]).item()


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_gpu_fp16_gradscaler_wgan_gp_agrees_with_fp32(tmp_path):
    """fp16 + GradScaler with the penalty's inner gradient scaled and unscaled: the first step's losses within 1%
    and updates with cosine > 0.99 of float32's (SGD), on the GPU; the scale is checkpointed."""
    base = ["model=wgan_gp", "data=digits", "data.batch_size=64", "model.d_norm=none", "model.opt_d.name=sgd",
            "model.opt_g.name=sgd", "model.opt_d.lr=0.1", "model.opt_g.lr=0.1", "model.n_critic=1"]
    runs = []
    for amp in ("off", "fp16"):
        tr = trainer(tmp_path / amp, *base, f"speed.amp={amp}", "speed.tf32=off", device="cuda")
        d0, g0 = params(tr.D), params(tr.G)
        tr.train_step(False)
        runs.append((tr.acc["loss/d"].item(), [a - b for a, b in zip(params(tr.D) + params(tr.G), d0 + g0)], tr))
    (ld, ref, _), (ld16, upd, tr) = runs
    assert ld16 == pytest.approx(ld, rel=1e-2)
    for a, b in zip(upd, ref):
        assert torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0) > 0.99
    assert set(tr.state_dict()["speed"]) == {"opt_g", "opt_d"}


# ----------------------------------------------------------------------------- the benchmark script


def test_bench_gpu_prints_one_table_with_device_and_date(capsys):
    """benchmarks/bench_gpu.py runs on the CPU (one small section here; `make bench-gpu BENCH_ARGS=--quick` runs
    all): the header names the device and the date, and each row has both measurements and their ratio."""
    import datetime
    from conftest import load_file_module

    bench = load_file_module(PKG.parent / "benchmarks" / "bench_gpu.py")
    text = bench.main(["--quick", "--device", "cpu", "--sections", "prdc", "--prdc-n", "200"])
    head, _, *rest = text.splitlines()
    assert "CPU" in head and datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d") in head
    row = next(line for line in rest if line.startswith("prdc 200 x 200 x 2048"))
    ours, ref, ratio = (float(v.rstrip("x")) for v in row.split()[7:10])
    assert ours > 0 and ref > 0 and ratio == pytest.approx(ref / ours, rel=1e-2, abs=0.011)
    assert "max |diff| 0.0e+00" in row  # the same four numbers as prdc


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_gpu_prdc_tiles_match_the_cpu():
    """PRDC on the GPU (float64 tiles, metrics' ctx.device) gives the CPU's numbers on 3000 x 3000 x 2048 features."""
    import numpy as np

    from gan_cli.metrics.prdc import prdc

    rng = np.random.default_rng(0)
    real = rng.standard_normal((3000, 2048)).astype(np.float32)
    fake = (rng.standard_normal((3000, 2048)) * 1.05 + 0.02).astype(np.float32)
    cpu = prdc(real, fake, k=5)
    gpu = prdc(real, fake, k=5, device="cuda")
    for key in cpu:
        assert gpu[key] == pytest.approx(cpu[key], abs=2 / 3000), key
