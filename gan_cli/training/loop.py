"""The one training loop.

Reads top to bottom: set-up (device, seeds, data, nets, objective, optimisers, evaluator, resume),
then per generator step: the objective's critic steps, one generator step, and at the logging
cadence one host sync that reads the accumulated scalars, checks them for NaN/inf and logs them;
pictures, evaluations and checkpoints at their own cadences.  At the end the final checkpoint is
written *before* the final evaluation, so a metric that fails never costs the trained weights.

The loop knows no objective, net or data set by name: :mod:`gan_cli.build` makes them from the
config, and the objective owns its regulariser (gradient penalty, clipping).
"""
from __future__ import annotations

import math
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from gan_cli.runs import checkpoint as ck

from gan_cli.files import read_json, write_json
from gan_cli.training import dist
from gan_cli.runs import records
from gan_cli import seeds
from gan_cli.runs.hints import resume_command
from gan_cli.build import (build_data, build_evaluator, build_nets, build_objective, build_optimizer, flat_hparams,
                           latent_dim, pick_device, plain_config)
from gan_cli.config import OnNonFinite, UserError, validate
from gan_cli.training.ema import EMA
from gan_cli.training.speed import SpeedPath


class Diverged(Exception):
    """A loss or weight became NaN/inf (the divergence guard)."""


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived; a checkpoint was written."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class _Stop(BaseException):
    """Raised by the signal handler inside an interruptible phase (evaluation, pictures)."""


# ----------------------------------------------------------------------------- helpers


def grad_norm(module: torch.nn.Module) -> torch.Tensor:
    grads = [p.grad.detach().norm() for p in module.parameters() if p.grad is not None]
    return torch.stack(grads).norm() if grads else torch.zeros(())


def all_finite(module: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in module.parameters())


@contextmanager
def graceful_signals(state: dict):
    """SIGINT/SIGTERM set ``state["signal"]``; the loop checks it after each step.  Inside an
    interruptible phase (``state["interruptible"]``: an evaluation, a picture) the handler also
    raises :class:`_Stop` so the phase ends now.  A second signal exits at once (no traceback)."""

    def handler(signum, frame):
        if state.get("signal"):
            raise SystemExit(128 + signum)
        state["signal"] = signum
        if state.get("interruptible"):
            raise _Stop()

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


@contextmanager
def interruptible(state: dict):
    if state.get("collective"):  # several processes: a phase full of collectives ends with the step, on every rank
        yield
        return
    state["interruptible"] = True
    try:
        if state.get("signal"):
            raise _Stop()
        yield
    finally:
        state["interruptible"] = False


# ----------------------------------------------------------------------------- the loop


class Trainer:
    """Holds the state of one run; ``run()`` trains it to ``cfg.steps`` generator steps."""

    def __init__(self, cfg: DictConfig, run_dir: Path, resume_state: dict | None = None,
                 resume_from: Path | str | None = None):
        validate(cfg)
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.resume_from = resume_from  # the checkpoint file of resume_state, named in errors
        self.ctx = dist.context()  # rank and world size (gan_cli.training.dist); rank 0 alone writes the run folder
        self.device = self.ctx.device(pick_device(cfg.device))
        # CPU kernels are deterministic for a fixed thread count already; turning on
        # torch.use_deterministic_algorithms there made matmuls ~40x slower (measured), so it
        # is only used for cuDNN, whose autotuner would otherwise pick kernels per run.
        if self.device.type == "cuda":
            torch.backends.cudnn.deterministic = bool(cfg.deterministic)
            torch.backends.cudnn.benchmark = not cfg.deterministic
        torch.manual_seed(seeds.seed_for(cfg.seed, "init"))  # initial weights
        self.data = build_data(cfg.data, self.device)
        if self.ctx.active:  # several processes: rank r draws from images r, r + N, ... (toy data: nothing to split)
            self.data = self.data.shard(self.ctx.rank, self.ctx.world)
        self.info = self.data.info
        self.G, self.D = self.ctx.prepare(*build_nets(cfg, self.info, self.device), bool(cfg.dist.sync_bn))
        if self.ctx.local_batch(cfg.data.batch_size) < 2 and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in self.D.modules()):
            raise UserError(f"a batch of 1 per process cannot train a batch-norm discriminator: use data.batch_size>="
                            f"{2 * self.ctx.world} or model.d_norm=none.")
        self.latent_dim = latent_dim(cfg)
        # the EMA generator (ema.beta > 0) is what evaluations and pictures sample from
        self.ema = EMA(self.G, float(cfg.ema.beta), bool(cfg.ema.rampup)) if cfg.ema.beta > 0 else None
        # the speed path (speed.*): channels_last in place, compiled G/D for the hot loop (self.speed.G/.D),
        # autocast, fused optimisers; self.G / self.D stay the plain modules (checkpoints, EMA, evaluation)
        self.speed = SpeedPath(cfg.speed, self.device, self.G, self.D, self.info.kind,
                               guard="skip" if cfg.guard.on_nonfinite == OnNonFinite.skip else "stop")
        self.objective = build_objective(cfg.model)
        self.opt_g = build_optimizer(self.G.parameters(), cfg.model.opt_g, self.speed.optimizer_options)
        self.opt_d = build_optimizer(self.D.parameters(), cfg.model.opt_d, self.speed.optimizer_options)
        # model.opt_*.decay: (optimiser, base lr, decay) of the optimisers whose lr decays, read once
        self.decaying = [(opt, float(o.lr), float(o.get("decay", 1.0))) for opt, o in
                         ((self.opt_g, cfg.model.opt_g), (self.opt_d, cfg.model.opt_d)) if float(o.get("decay", 1.0)) != 1.0]
        # Modules of G and D with a schedule of their own (net.fourier's coarse-to-fine features): told the
        # fraction of the run done before each step, from the step count alone (a resumed run continues it).
        self.scheduled = [m for net in (self.G, self.D) for m in net.modules() if callable(getattr(m, "set_progress", None))]
        # One stream per purpose (gan_cli.seeds): logging cadence never changes the trajectory.
        self.gen = seeds.generator(cfg.seed, "train", self.device, self.ctx.rank)
        self.est_gen = seeds.generator(cfg.seed, "estimate", self.device, self.ctx.rank)
        self.fixed_z = torch.randn(cfg.num_image_samples, self.latent_dim,
                                   generator=seeds.generator(cfg.seed, "fixed_z")).to(self.device)
        self.evaluator = build_evaluator(cfg.metrics, cfg.data, self.data, self.device)
        self.best = self._best_tracker(cfg.ckpt_best)
        self.step = 0
        self.skips = 0
        self._zero_acc()
        if resume_state is not None:
            self._restore(resume_state)

    def _best_tracker(self, name) -> dict | None:
        """ckpt_best=<metric>: its direction from the registry and the best value so far (best.json)."""
        if not name:
            return None
        from gan_cli.metrics.registry import direction

        if not self.evaluator.active:
            raise UserError(f"ckpt_best={name} needs metrics to evaluate; this run has none (metrics.suite="
                            f"{self.evaluator.suite}): choose metrics=toy|images|inception or drop ckpt_best.")
        if direction(str(name)) is None:
            raise UserError(f"ckpt_best={name}: no registered metric says whether lower or higher is better; use a "
                            f"metric name such as fid, kid, w1, rkl, modes, precision or recall.")
        saved = read_json(ck.best_path(self.run_dir).with_suffix(".json")) or {}
        return {"name": str(name), "direction": direction(str(name)), "value": saved.get("value"),
                "key": saved.get("key")}

    def _keep_best(self, values: dict) -> None:
        b = self.best
        key = b["key"] if b["key"] in values else next((k for k in values if k.startswith(b["name"])), None)
        if key is None or not math.isfinite(values[key]):
            return
        v = values[key]
        better = b["value"] is None or (v < b["value"] if b["direction"] == "min" else v > b["value"])
        if better:
            path = ck.best_path(self.run_dir)
            ck.save_checkpoint(path, self.state_dict())
            write_json(path.with_suffix(".json"), {"step": self.step, "key": key, "value": v,
                                                       "direction": b["direction"]})
            b.update(value=v, key=key)

    # -- state ---------------------------------------------------------------
    def _zero_acc(self):
        z = lambda: torch.zeros((), device=self.device)  # noqa: E731
        self.acc = {"loss/d": z(), "loss/g": z(), "n": 0}

    def _rng(self) -> dict:
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "train": self.gen.get_state(),
            "estimate": self.est_gen.get_state(),
        }

    def state_dict(self, ranks_rng: list | None = None) -> dict:
        """What resuming needs, and no logs (those are in the run folder's *.jsonl and tb/).
        ``ranks_rng``: every rank's random streams (several processes), rank order."""
        return {
            "world_size": self.ctx.world,
            **({"rng_ranks": ranks_rng[1:]} if ranks_rng and len(ranks_rng) > 1 else {}),
            "step": self.step,
            "generator": self.G.state_dict(),
            "discriminator": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "rng": self._rng(),
            # the partial sums of the current logging interval, so a resumed run logs the same means
            "acc": {"loss/d": self.acc["loss/d"].cpu(), "loss/g": self.acc["loss/g"].cpu(), "n": self.acc["n"]},
            "skips": self.skips,
            **({"generator_ema": self.ema.state_dict()} if self.ema is not None else {}),
            # the objective's own counters (which D steps carry a lazy regulariser)
            "objective": self.objective.state_dict() if hasattr(self.objective, "state_dict") else {},
            # a data source with a position (the streaming sampler's batch count), so a resume is exact
            **({"data": self.data.state_dict()} if hasattr(self.data, "state_dict") else {}),
            "speed": self.speed.state_dict({"opt_g": self.opt_g, "opt_d": self.opt_d}),  # fp16 loss scales
            "config": plain_config(self.cfg),
            "info": {"name": self.info.name, "kind": self.info.kind, "shape": list(self.info.shape)},
        }

    def _restore(self, s: dict):
        try:
            self.G.load_state_dict(s["generator"])
            self.D.load_state_dict(s["discriminator"])
            self.opt_g.load_state_dict(s["opt_g"])
            self.opt_d.load_state_dict(s["opt_d"])
            if self.ema is not None:
                self.ema.load_state_dict(s["generator_ema"])
        except (RuntimeError, KeyError, ValueError) as e:
            src = f"checkpoint {self.resume_from}" if self.resume_from else "checkpoint"
            detail = " ".join(ln.strip() for ln in str(e).splitlines()[:2])[:240]  # line 2 names the tensor
            raise UserError(f"{src} does not fit the configured architecture ({detail}).") from None
        self.step = int(s["step"])
        rng = s["rng"] if self.ctx.rank == 0 else s["rng_ranks"][self.ctx.rank - 1]  # this rank's streams
        torch.set_rng_state(rng["torch"])
        if self.device.type == "cuda" and rng["cuda"]:
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.gen.set_state(rng["train"])
        self.est_gen.set_state(rng["estimate"])
        self.acc = {
            "loss/d": s["acc"]["loss/d"].to(self.device),
            "loss/g": s["acc"]["loss/g"].to(self.device),
            "n": int(s["acc"]["n"]),
        }
        self.skips = int(s.get("skips", 0))
        self.speed.load_state_dict(s.get("speed") or {}, {"opt_g": self.opt_g, "opt_d": self.opt_d})
        if hasattr(self.objective, "load_state_dict"):
            self.objective.load_state_dict(s.get("objective") or {})
        if hasattr(self.data, "load_state_dict"):
            self.data.load_state_dict(s.get("data"))

    # -- one step ------------------------------------------------------------
    def noise(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=gen, device=self.device)

    def _skip_bad(self, loss: torch.Tensor, opt) -> bool:
        """In skip mode, drop a step whose loss or gradient is not finite.  A host sync per step, by design (the
        decision to step is taken on the host): the one host read in the hot loop, and only in skip mode."""
        if self.cfg.guard.on_nonfinite != OnNonFinite.skip:
            return False
        params = [p for grp in opt.param_groups for p in grp["params"] if p.grad is not None]
        ok = bool(torch.isfinite(loss)) and all(bool(torch.isfinite(p.grad).all()) for p in params)
        if not ok:
            opt.zero_grad(set_to_none=True)
            self.skips += 1
        return not ok

    def schedule(self) -> None:
        """What depends on the step about to be taken, from the step count alone (a resumed run continues the same
        schedule), with ``fraction = step / (steps - 1)``: ``model.opt_*.decay``'s lr, ``lr * decay^fraction``,
        and the modules with a ``set_progress(fraction)`` method."""
        fraction = self.step / max(int(self.cfg.steps) - 1, 1)
        for opt, lr, decay in self.decaying:
            for group in opt.param_groups:
                group["lr"] = lr * decay ** fraction
        for m in self.scheduled:
            m.set_progress(fraction)

    def train_step(self, want_norms: bool) -> dict:
        """The objective's critic steps, then one generator step. Returns device scalars (grad norms)."""
        self.schedule()
        obj, bs = self.objective, self.ctx.local_batch(self.cfg.data.batch_size)  # data.batch_size is the global batch
        G, D, fast = self.speed.G, self.speed.D, self.speed  # G, D: compiled when speed.compile (same weights)
        out = {}
        self.D.requires_grad_(True)
        bad_d = bad_g = False  # skip mode: a skipped (non-finite) step stays out of the logged means
        for _ in range(obj.critic_steps(self.step)):
            with fast.autocast(self.opt_d):  # bf16/fp16 forward passes when speed.amp is on
                real = self.data.sample(bs, self.gen)
                with torch.no_grad():
                    fake = G(self.noise(bs, self.gen))
                loss_d = obj.discriminator_loss(D, real, fake, self.gen)  # with its regulariser
            self.opt_d.zero_grad(set_to_none=True)
            fast.backward(loss_d, self.opt_d)  # scaled under fp16
            loss_d = self.ctx.reduce_grads(self.D, loss_d)  # several processes: mean gradients and loss over the ranks
            bad_d = self._skip_bad(loss_d, self.opt_d)
            if not bad_d:
                fast.step(self.opt_d)
            obj.after_d_step(self.D)  # e.g. WGAN's weight clipping
        if want_norms:
            out["grad_norm/d"] = grad_norm(self.D)
        self.D.requires_grad_(False)  # G step: no gradients into D's parameters
        with fast.autocast(self.opt_g):
            fake = G(self.noise(bs, self.gen))
            loss_g = obj.generator_loss(D, fake, self.gen)  # the train stream, for noise the objective may add
        self.opt_g.zero_grad(set_to_none=True)
        fast.backward(loss_g, self.opt_g)
        loss_g = self.ctx.reduce_grads(self.G, loss_g)
        bad_g = self.cfg.train_generator and self._skip_bad(loss_g, self.opt_g)
        if self.cfg.train_generator and not bad_g:
            fast.step(self.opt_g)
            if self.ema is not None:
                self.ema.update(self.G, self.step)
        if want_norms:
            out["grad_norm/g"] = grad_norm(self.G)
        # Accumulate on the device: no host sync here.
        if not (bad_d or bad_g):
            self.acc["loss/d"] += loss_d.detach()
            self.acc["loss/g"] += loss_g.detach()
            self.acc["n"] += 1
        return out

    @property
    def sampling_G(self) -> torch.nn.Module:
        """The generator that evaluations and pictures sample from: the EMA one when there is one."""
        return self.ema.model if self.ema is not None else self.G

    @torch.no_grad()
    def estimate(self) -> torch.Tensor:
        """The divergence estimate at the current D on a held-out batch (not used for training)."""
        n = -(-self.cfg.estimate_batch // self.ctx.world)  # each rank's share (rounded up)
        real = self.data.sample(n, self.est_gen)
        fake = self.G(self.noise(n, self.est_gen))
        return self.objective.estimate(self.ctx.gather_cat(self.D(real)), self.ctx.gather_cat(self.D(fake)))

    # -- logging -------------------------------------------------------------
    def log_scalars(self, writer, extra: dict) -> dict:
        n = max(self.acc["n"], 1)
        vals = {k: self.acc[k] / n for k in ("loss/d", "loss/g")}
        vals[self.objective.estimate_tag] = self.estimate()
        if hasattr(self.G, "log_scalars"):  # parametric toy generators: theta / mu, sigma under gen/...
            vals.update(self.G.log_scalars())
            if self.ema is not None:  # and the EMA generator's, which evaluations sample from, under gen_ema/...
                vals.update({"gen_ema/" + k.split("/", 1)[1]: v for k, v in self.ema.model.log_scalars().items()})
        vals.update(extra)
        # One host sync for all scalars of this interval.
        host = dict(zip(vals.keys(), torch.stack([v.float().reshape(()) for v in vals.values()]).cpu().tolist()))
        host["lr/g"] = self.opt_g.param_groups[0]["lr"]
        host["lr/d"] = self.opt_d.param_groups[0]["lr"]
        if self.cfg.guard.on_nonfinite == OnNonFinite.skip:
            host["guard/skipped_steps"] = float(self.skips)
        for k, v in host.items():
            writer.add_scalar(k, v, self.step)
        if self.ctx.is_main:
            records.append(self.run_dir / records.SCALARS, {"step": self.step, "time": time.time(), **host})
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
            skip = self.cfg.guard.on_nonfinite == OnNonFinite.skip  # skipping bad steps did not save it
            hint = "" if skip else " or guard.on_nonfinite=skip"
            raise Diverged(
                f"{bad[0]} became {host.get(bad[0], 'NaN/inf')} between steps {lo} and {self.step}; {last}. "
                f"Try a lower learning rate (model.opt_d.lr / model.opt_g.lr){hint}."
            )

    def log_pictures(self, writer):
        from gan_cli import viz

        G = self.sampling_G
        was = G.training
        G.eval()  # fixed latents through BN running stats: a stable picture over time
        with torch.no_grad():
            if self.info.kind == "image":
                fake = G(self.fixed_z)
            else:
                fake = G(self.noise(2000, seeds.generator(self.cfg.seed, "pictures", self.device)))
        G.train(was)
        if self.info.kind == "image":
            writer.add_image("samples", viz.image_grid(fake), self.step)
            return
        real = self.data.sample(2000, seeds.generator(self.cfg.seed, "pictures_real", self.device)).cpu().numpy()
        fake = fake.cpu().numpy()
        title = f"{self.cfg.model.name} step {self.step}"
        if self.info.kind == "toy2d":
            centers = self.info.centers.cpu().numpy() if self.info.centers is not None else None
            fig = viz.scatter_figure(real, fake, centers, title)
        else:
            fig = viz.density_figure(real, fake, getattr(self.data, "density", None), title)
        writer.add_figure("samples", fig, self.step)

    def evaluate(self, writer) -> dict:
        """Run the evaluator on the current generator: ``metrics/<name>`` in TensorBoard and one line
        in ``metrics.jsonl``."""
        if not self.evaluator.active:
            return {}
        from gan_cli.metrics.evaluator import generator_sampler

        t0 = time.time()
        if self.ctx.active:  # every rank generates its share of the samples; rank 0 scores them
            values = dist.evaluate(self.ctx, self.evaluator, self.sampling_G, self.latent_dim, self.device, self.cfg.seed)
            if not self.ctx.is_main:
                return {}
        else:
            values = self.evaluator(generator_sampler(self.sampling_G, self.latent_dim, self.device, self.cfg.seed))
        for k, v in values.items():
            writer.add_scalar(f"metrics/{k}", v, self.step)
        mode = {"preprocess": self.evaluator.preprocess} if self.evaluator.preprocess else {}  # Inception only
        records.append(self.run_dir / records.METRICS, {"step": self.step, "time": t0, "seconds": time.time() - t0,
                                                      "suite": self.evaluator.suite, **mode, **values})
        if self.best is not None:
            self._keep_best(values)
        return values

    def save(self) -> Path:
        path = ck.ckpt_path(self.run_dir, self.step)
        ranks_rng = self.ctx.gather_objects(self._rng())  # several processes: every rank saves together
        if self.ctx.is_main:
            ck.save_checkpoint(path, self.state_dict(ranks_rng))
            ck.rotate_checkpoints(self.run_dir, self.cfg.keep_ckpts)
        return path

    def _checked_save(self) -> Path:
        if getattr(self, "writer", None) is not None:
            self.writer.flush()  # events up to this step are on disk before the checkpoint says so
        # Never overwrite good checkpoints with NaN weights.
        if not (all_finite(self.G) and all_finite(self.D)):
            self.check_finite({"loss/d": float("nan"), "loss/g": float("nan"), self.objective.estimate_tag: float("nan")})
        return self.save()

    def _saved_now(self) -> Path:
        """The checkpoint of the current step: the one on disk, or a new one."""
        path = ck.ckpt_path(self.run_dir, self.step)
        return path if self.ctx.from_main(path.exists()) else self._checked_save()

    # -- the run ---------------------------------------------------------------
    def run(self, progress=None) -> dict:
        from torch.utils.tensorboard import SummaryWriter

        cfg, main = self.cfg, self.ctx.is_main
        if self.step and main:  # drop what a killed run logged after its last checkpoint
            records.trim(self.run_dir / records.SCALARS, self.step)
            records.trim(self.run_dir / records.METRICS, self.step)
        # purge_step drops events a killed run logged after its last checkpoint.
        writer = self.writer = (SummaryWriter(str(self.run_dir / "tb"), purge_step=self.step + 1 if self.step else None)
                                if main else dist.NullWriter())
        if self.step == 0:
            writer.add_text("config", "```\n" + OmegaConf.to_yaml(plain_config(cfg)) + "\n```", 0)
        sig: dict = {"collective": self.ctx.active}
        # a run resumed at its last step (its final evaluation was interrupted) reports its last logged scalars
        last_host: dict = {k: v for k, v in (records.read(self.run_dir / records.SCALARS) or [{}])[-1].items()
                           if k not in ("step", "time")} if self.step >= cfg.steps and main else {}
        metrics: dict = {}
        # wall and process CPU time of the training steps (CPU: all threads of this process; on a shared
        # machine the wall time depends on the load, the CPU time much less)
        t0, c0, s0 = time.perf_counter(), time.process_time(), self.step
        try:
            with graceful_signals(sig):
                try:
                    while self.step < cfg.steps:
                        log_now = (self.step + 1) % cfg.log_every == 0 or self.step + 1 == cfg.steps
                        extra = self.train_step(want_norms=log_now)
                        self.step += 1
                        if log_now:  # host sync: once per logging interval
                            last_host = self.log_scalars(writer, extra)
                            self.check_finite(last_host)
                            if progress is not None:
                                progress(self.step, last_host)
                        elif progress is not None:
                            progress(self.step, None)
                        if cfg.image_every and (self.step % cfg.image_every == 0 or self.step == cfg.steps) and main:
                            with interruptible(sig):
                                self.log_pictures(writer)
                        if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < cfg.steps:
                            with interruptible(sig):
                                self.evaluate(writer)
                        ckpt_now = cfg.ckpt_every and self.step % cfg.ckpt_every == 0 and self.step < cfg.steps
                        if ckpt_now:
                            self._checked_save()
                        if self.ctx.share_signal(sig, log_now or ckpt_now):  # several processes: any rank's signal
                            raise _Stop()
                    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
                    final_path = self._saved_now()  # the weights first: nothing after this can lose them
                    with interruptible(sig):
                        metrics = self.evaluate(writer)
                except _Stop:
                    path = self._saved_now()
                    name = signal.Signals(sig["signal"]).name
                    raise Interrupted(f"{name} received: stopped at step {self.step}, checkpoint {path}. "
                                      f"Continue with: {resume_command(self.run_dir)}", sig["signal"]) from None
            result = {
                "status": "completed",
                "step": self.step,
                "run_dir": str(self.run_dir),
                "checkpoint": str(final_path),
                "steps_per_s": (self.step - s0) / max(elapsed, 1e-9),
                "train_s": elapsed,  # this process's training (since its start or resume), final evaluation excluded
                "cpu_s": cpu,
                "final": {**last_host, **metrics},
                "metrics": metrics,
                "suite": self.evaluator.suite,
                "preprocess": self.evaluator.preprocess,  # Inception preprocessing mode (None: no Inception)
            }
            if main:
                self._log_hparams(writer, last_host, metrics)
            return result
        finally:
            writer.close()

    def _log_hparams(self, writer, final: dict, metrics: dict):
        from torch.utils.tensorboard.summary import hparams

        values = {f"final/{k}": float(v) for k, v in final.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        values.update({f"metrics/{k}": float(v) for k, v in metrics.items() if math.isfinite(v)})
        exp, ssi, sei = hparams(flat_hparams(self.cfg, self.evaluator.preprocess), values)
        fw = writer._get_file_writer()
        for s in (exp, ssi, sei):
            fw.add_summary(s)
        for k, v in values.items():
            if k.startswith("final/"):  # metrics/* were logged by evaluate()
                writer.add_scalar(k, v, self.step)
