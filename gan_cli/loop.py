"""The one training loop.

Reads top to bottom: set-up (device, seeds, data, nets, optimisers, resume),
then per generator step: n_critic discriminator/critic steps, one generator step,
and at the logging cadence a host sync that reads the accumulated scalars, checks
them for NaN/inf, computes the divergence estimate on a held-out batch and writes
TensorBoard; pictures, checkpoints and metrics at their own cadences.
"""
from __future__ import annotations

import math
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from gan_cli import checkpoint as ck
from gan_cli.config import OnNonFinite, TrainConfig, UserError, validate
from gan_cli.data import build_data
from gan_cli.nets import build_nets
from gan_cli.objectives import build_objective, gradient_penalty


class Diverged(Exception):
    """A loss or weight became NaN/inf (the divergence guard)."""


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived; a checkpoint was written."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


# ----------------------------------------------------------------------------- helpers


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device={name} was asked for but CUDA is not available here; use device=cpu or device=auto.")
    return dev


def make_optimizer(params, ocfg) -> torch.optim.Optimizer:
    name = getattr(ocfg.name, "value", ocfg.name)
    if name == "adam":
        return torch.optim.Adam(params, lr=ocfg.lr, betas=(ocfg.beta1, ocfg.beta2))
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=ocfg.lr)
    raise UserError(f"optimizer {name} is unknown: use adam or rmsprop.")


def grad_norm(module: torch.nn.Module) -> torch.Tensor:
    grads = [p.grad.detach().norm() for p in module.parameters() if p.grad is not None]
    return torch.stack(grads).norm() if grads else torch.zeros(())


def all_finite(module: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in module.parameters())


def resolved_latent_dim(cfg) -> int:
    return int(cfg.net.latent_dim or cfg.data.latent_dim)


def resolved_net_name(cfg) -> str:
    name = getattr(cfg.net.name, "value", cfg.net.name)
    return cfg.data.default_net if name == "auto" else name


def build_generator_and_critic(cfg, info, device):
    net_cfg = OmegaConf.merge(cfg.net, {"name": resolved_net_name(cfg)}) if isinstance(cfg, DictConfig) else cfg.net
    d_norm = getattr(cfg.model.d_norm, "value", cfg.model.d_norm)
    G, D = build_nets(net_cfg, info, resolved_latent_dim(cfg), d_norm)
    return G.to(device), D.to(device)


def plain_config(cfg) -> dict:
    """The resolved config as plain data (enums as strings) for checkpoints and logs."""
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)


def load_config(plain: dict) -> DictConfig:
    """Re-type a plain config (e.g. from a checkpoint) against the schema."""
    schema = OmegaConf.structured(TrainConfig)
    try:
        return OmegaConf.merge(schema, plain)
    except Exception as e:  # omegaconf.errors.* : config from another version
        raise UserError(f"the saved config does not fit this gan_cli version: {str(e).splitlines()[0]}") from None


def flat_hparams(cfg) -> dict:
    c = plain_config(cfg)
    out = {
        "model": c["model"]["name"],
        "data": c["data"]["name"],
        "net": resolved_net_name(cfg),
        "seed": c["seed"],
        "steps": c["steps"],
        "batch_size": c["data"]["batch_size"],
        "n_critic": c["model"]["n_critic"],
        "lr_g": c["model"]["opt_g"]["lr"],
        "lr_d": c["model"]["opt_d"]["lr"],
        "opt": c["model"]["opt_g"]["name"],
        "gp_weight": c["model"]["gp_weight"],
        "clip": c["model"]["clip"] if c["model"]["clip"] is not None else 0.0,
        "latent_dim": resolved_latent_dim(cfg),
    }
    if c["model"]["name"] == "fgan":
        out["divergence"] = c["model"]["divergence"]
    return out


@contextmanager
def graceful_signals(state: dict):
    """Turn SIGINT/SIGTERM into a flag the loop checks after each step."""

    def handler(signum, frame):
        if state.get("signal"):
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        state["signal"] = signum

    old = {}
    for s in (signal.SIGINT, signal.SIGTERM):
        try:
            old[s] = signal.signal(s, handler)
        except ValueError:  # not the main thread (e.g. some launchers)
            pass
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# ----------------------------------------------------------------------------- the loop


class Trainer:
    """Holds the state of one run; ``run()`` trains it to ``cfg.steps`` generator steps."""

    def __init__(self, cfg: DictConfig, run_dir: Path, resume_state: dict | None = None,
                 resume_from: Path | str | None = None):
        validate(cfg)
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.resume_from = resume_from  # the checkpoint file of resume_state, named in errors
        self.device = pick_device(cfg.device)
        # CPU kernels are deterministic for a fixed thread count already; turning on
        # torch.use_deterministic_algorithms there made matmuls ~40x slower (measured), so it
        # is only used for cuDNN, whose autotuner would otherwise pick kernels per run.
        if self.device.type == "cuda":
            torch.backends.cudnn.deterministic = bool(cfg.deterministic)
            torch.backends.cudnn.benchmark = not cfg.deterministic
        torch.manual_seed(cfg.seed)  # initial weights
        self.data = build_data(cfg.data, self.device)
        self.info = self.data.info
        self.G, self.D = build_generator_and_critic(cfg, self.info, self.device)
        self.latent_dim = resolved_latent_dim(cfg)
        self.objective = build_objective(cfg.model)
        self.opt_g = make_optimizer(self.G.parameters(), cfg.model.opt_g)
        self.opt_d = make_optimizer(self.D.parameters(), cfg.model.opt_d)
        # Two generators: one drives training draws, one the held-out estimate batches, so
        # logging cadence never changes the training trajectory.
        self.gen = torch.Generator(self.device).manual_seed(cfg.seed + 1)
        self.est_gen = torch.Generator(self.device).manual_seed(cfg.seed + 2)
        g = torch.Generator().manual_seed(cfg.seed + 3)
        self.fixed_z = torch.randn(cfg.num_image_samples, self.latent_dim, generator=g).to(self.device)
        from gan_cli.metrics.suite import SuiteContext, resolve_suite

        self.suite = resolve_suite(cfg.metrics, self.info, str(cfg.data.name))
        self.suite_ctx = SuiteContext(cfg.data, self.data, cfg.metrics, self.device)
        self.step = 0
        self.skips = 0
        self.history: list[dict] = []
        self.metric_history: list[dict] = []
        self._zero_acc()
        if resume_state is not None:
            self._restore(resume_state)

    # -- state ---------------------------------------------------------------
    def _zero_acc(self):
        z = lambda: torch.zeros((), device=self.device)  # noqa: E731
        self.acc = {"loss/d": z(), "loss/g": z(), "n": 0}

    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "generator": self.G.state_dict(),
            "discriminator": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
                "train": self.gen.get_state(),
                "estimate": self.est_gen.get_state(),
            },
            "acc": {"loss/d": self.acc["loss/d"].cpu(), "loss/g": self.acc["loss/g"].cpu(), "n": self.acc["n"]},
            "skips": self.skips,
            "history": self.history,
            "metric_history": self.metric_history,
            "config": plain_config(self.cfg),
            "info": {"name": self.info.name, "kind": self.info.kind, "shape": list(self.info.shape)},
        }

    def _restore(self, s: dict):
        try:
            self.G.load_state_dict(s["generator"])
            self.D.load_state_dict(s["discriminator"])
            self.opt_g.load_state_dict(s["opt_g"])
            self.opt_d.load_state_dict(s["opt_d"])
        except (RuntimeError, KeyError, ValueError) as e:
            src = f"checkpoint {self.resume_from}" if self.resume_from else "checkpoint"
            detail = " ".join(ln.strip() for ln in str(e).splitlines()[:2])[:240]  # line 2 names the tensor
            raise UserError(f"{src} does not fit the configured architecture ({detail}).") from None
        self.step = int(s["step"])
        torch.set_rng_state(s["rng"]["torch"])
        if self.device.type == "cuda" and s["rng"]["cuda"]:
            torch.cuda.set_rng_state_all(s["rng"]["cuda"])
        self.gen.set_state(s["rng"]["train"])
        self.est_gen.set_state(s["rng"]["estimate"])
        self.acc = {
            "loss/d": s["acc"]["loss/d"].to(self.device),
            "loss/g": s["acc"]["loss/g"].to(self.device),
            "n": int(s["acc"]["n"]),
        }
        self.skips = int(s.get("skips", 0))
        self.history = list(s.get("history", []))
        self.metric_history = list(s.get("metric_history", []))

    # -- one step ------------------------------------------------------------
    def noise(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=gen, device=self.device)

    def critic_steps(self) -> int:
        m = self.cfg.model
        if m.warmup_critic_steps and (self.step < m.warmup_g_steps or (m.warmup_every and self.step % m.warmup_every == 0)):
            return m.warmup_critic_steps
        return m.n_critic

    def _skip_bad(self, loss: torch.Tensor, opt) -> bool:
        """In skip mode, drop a step whose loss or gradient is not finite (a host sync per step)."""
        if self.cfg.guard.on_nonfinite != OnNonFinite.skip:
            return False
        params = [p for grp in opt.param_groups for p in grp["params"] if p.grad is not None]
        ok = bool(torch.isfinite(loss)) and all(bool(torch.isfinite(p.grad).all()) for p in params)
        if not ok:
            opt.zero_grad(set_to_none=True)
            self.skips += 1
        return not ok

    def train_step(self, want_norms: bool) -> dict:
        cfg, obj, bs = self.cfg, self.objective, self.cfg.data.batch_size
        out = {}
        self.D.requires_grad_(True)
        bad_d = bad_g = False  # skip mode: a skipped (non-finite) step stays out of the logged means
        for _ in range(self.critic_steps()):
            real = self.data.sample(bs, self.gen)
            with torch.no_grad():
                fake = self.G(self.noise(bs, self.gen))
            loss_d = obj.d_loss(self.D(real), self.D(fake))
            if cfg.model.gp_weight > 0:
                loss_d = loss_d + cfg.model.gp_weight * gradient_penalty(self.D, real, fake, self.gen)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            bad_d = self._skip_bad(loss_d, self.opt_d)
            if not bad_d:
                self.opt_d.step()
            if cfg.model.clip is not None:  # WGAN: keep the critic K-Lipschitz by clipping
                with torch.no_grad():
                    for p in self.D.parameters():
                        p.clamp_(-cfg.model.clip, cfg.model.clip)
        if want_norms:
            out["grad_norm/d"] = grad_norm(self.D)
        self.D.requires_grad_(False)  # G step: no gradients into D's parameters
        fake = self.G(self.noise(bs, self.gen))
        loss_g = obj.g_loss(self.D(fake))
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        bad_g = cfg.train_generator and self._skip_bad(loss_g, self.opt_g)
        if cfg.train_generator and not bad_g:
            self.opt_g.step()
        if want_norms:
            out["grad_norm/g"] = grad_norm(self.G)
        # Accumulate on the device: no host sync here.
        if not (bad_d or bad_g):
            self.acc["loss/d"] += loss_d.detach()
            self.acc["loss/g"] += loss_g.detach()
            self.acc["n"] += 1
        return out

    @torch.no_grad()
    def estimate(self) -> torch.Tensor:
        """The divergence estimate at the current D on a held-out batch (not used for training)."""
        n = self.cfg.estimate_batch
        real = self.data.sample(n, self.est_gen)
        fake = self.G(self.noise(n, self.est_gen))
        return self.objective.estimate(self.D(real), self.D(fake))

    # -- logging -------------------------------------------------------------
    def log_scalars(self, writer, extra: dict) -> dict:
        n = max(self.acc["n"], 1)
        vals = {k: self.acc[k] / n for k in ("loss/d", "loss/g")}
        vals[self.objective.estimate_tag] = self.estimate()
        if hasattr(self.G, "log_scalars"):  # parametric toy generators: theta / mu, sigma under gen/...
            vals.update(self.G.log_scalars())
        vals.update(extra)
        # One host sync for all scalars of this interval.
        host = dict(zip(vals.keys(), torch.stack([v.float().reshape(()) for v in vals.values()]).cpu().tolist()))
        host["lr/g"] = self.opt_g.param_groups[0]["lr"]
        host["lr/d"] = self.opt_d.param_groups[0]["lr"]
        if self.cfg.guard.on_nonfinite == OnNonFinite.skip:
            host["guard/skipped_steps"] = float(self.skips)
        for k, v in host.items():
            writer.add_scalar(k, v, self.step)
        self._zero_acc()
        return host

    def check_finite(self, host: dict):
        bad = [k for k in ("loss/d", "loss/g", self.objective.estimate_tag) if not math.isfinite(host[k])]
        if not bad:
            bad = [name for name, m in (("generator weights", self.G), ("discriminator weights", self.D)) if not all_finite(m)]
        if bad:
            lo = max(self.step - self.cfg.log_every, 0)
            ckpts = ck.list_checkpoints(self.run_dir)
            last = f"last good checkpoint: {ckpts[-1]}" if ckpts else "no checkpoint was written yet"
            raise Diverged(
                f"{bad[0]} became {host.get(bad[0], 'NaN/inf')} between steps {lo} and {self.step}; {last}. "
                f"Try a lower learning rate (model.opt_d.lr / model.opt_g.lr) or guard.on_nonfinite=skip."
            )

    def log_pictures(self, writer):
        from gan_cli import viz

        was = self.G.training
        self.G.eval()  # fixed latents through BN running stats: a stable picture over time
        with torch.no_grad():
            fake = self.G(self.fixed_z) if self.info.kind == "image" else self.G(self.noise(2000, torch.Generator(self.device).manual_seed(self.cfg.seed + 4)))
        self.G.train(was)
        if self.info.kind == "image":
            writer.add_image("samples", viz.image_grid(fake), self.step)
            return
        real = self.data.sample(2000, torch.Generator(self.device).manual_seed(self.cfg.seed + 5)).cpu().numpy()
        fake = fake.cpu().numpy()
        title = f"{self.cfg.model.name.value} step {self.step}"
        if self.info.kind == "toy2d":
            centers = self.info.centers.cpu().numpy() if self.info.centers is not None else None
            fig = viz.scatter_figure(real, fake, centers, title)
        else:
            fig = viz.density_figure(real, fake, getattr(self.data, "density", None), title)
        writer.add_figure("samples", fig, self.step)

    def save(self) -> Path:
        path = ck.ckpt_path(self.run_dir, self.step)
        ck.save_checkpoint(path, self.state_dict())
        ck.rotate_checkpoints(self.run_dir, self.cfg.keep_ckpts)
        return path

    # -- the run ---------------------------------------------------------------
    def run(self, progress=None) -> dict:
        from torch.utils.tensorboard import SummaryWriter

        cfg = self.cfg
        # purge_step drops events a killed run logged after its last checkpoint.
        writer = self.writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=self.step + 1 if self.step else None)
        if self.step == 0:
            writer.add_text("config", "```\n" + OmegaConf.to_yaml(plain_config(cfg)) + "\n```", 0)
        sig: dict = {}
        last_host: dict = {}
        t0, s0 = time.perf_counter(), self.step
        try:
            with graceful_signals(sig):
                while self.step < cfg.steps:
                    log_now = (self.step + 1) % cfg.log_every == 0 or self.step + 1 == cfg.steps
                    extra = self.train_step(want_norms=log_now)
                    self.step += 1
                    if log_now:  # host sync: once per logging interval
                        last_host = self.log_scalars(writer, extra)
                        self.check_finite(last_host)
                        self.history.append({"step": self.step, **{k: last_host[k] for k in ("loss/d", "loss/g", self.objective.estimate_tag)},
                                             **{k: v for k, v in last_host.items() if k.startswith("gen/")}})
                        if progress is not None:
                            progress(self.step, last_host)
                    elif progress is not None:
                        progress(self.step, None)
                    if cfg.image_every and (self.step % cfg.image_every == 0 or self.step == cfg.steps):
                        self.log_pictures(writer)
                    if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < cfg.steps:
                        self.evaluate(writer)
                    if cfg.ckpt_every and self.step % cfg.ckpt_every == 0 and self.step < cfg.steps:
                        self._checked_save()
                    if sig.get("signal"):
                        path = self._checked_save()
                        name = signal.Signals(sig["signal"]).name
                        raise Interrupted(
                            f"{name} received: stopped at step {self.step}, checkpoint {path}. "
                            f"Continue with: gan-train resume={self.run_dir}",
                            sig["signal"],
                        )
            elapsed = time.perf_counter() - t0
            metrics = self.evaluate(writer)
            final_path = self._checked_save()
            result = {
                "status": "completed",
                "step": self.step,
                "run_dir": str(self.run_dir),
                "checkpoint": str(final_path),
                "steps_per_s": (self.step - s0) / max(elapsed, 1e-9),
                "final": {k: v for k, v in last_host.items()},
                "metrics": metrics,
                "suite": self.suite,
            }
            self._log_hparams(writer, result["final"])
            return result
        finally:
            writer.close()

    def evaluate(self, writer) -> dict:
        """Run the metric suite on the current generator; scalars go to ``metrics/<name>``."""
        if self.suite == "none":
            return {}
        from gan_cli.metrics.suite import generator_sampler, run_suite

        sampler = generator_sampler(self.G, self.latent_dim, self.device, self.cfg.seed + 7)
        values = run_suite(self.suite, sampler, self.suite_ctx)
        for k, v in values.items():
            writer.add_scalar(f"metrics/{k}", v, self.step)
        self.metric_history.append({"step": self.step, **values})
        return values

    def _checked_save(self) -> Path:
        if getattr(self, "writer", None) is not None:
            self.writer.flush()  # events up to this step are on disk before the checkpoint says so
        # Never overwrite good checkpoints with NaN weights.
        if not (all_finite(self.G) and all_finite(self.D)):
            self.check_finite({"loss/d": float("nan"), "loss/g": float("nan"), self.objective.estimate_tag: float("nan")})
        return self.save()

    def _log_hparams(self, writer, final: dict):
        from torch.utils.tensorboard.summary import hparams

        metrics = {f"final/{k}": float(v) for k, v in final.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        metrics.update({f"metrics/{k}": float(v) for k, v in (self.metric_history[-1] if self.metric_history else {}).items()
                        if k != "step" and math.isfinite(v)})
        exp, ssi, sei = hparams(flat_hparams(self.cfg), metrics)
        fw = writer._get_file_writer()
        for s in (exp, ssi, sei):
            fw.add_summary(s)
        for k, v in metrics.items():
            if k.startswith("final/"):  # metrics/* were logged by evaluate()
                writer.add_scalar(k, v, self.step)
