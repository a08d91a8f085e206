"""The one training loop.

Reads top to bottom.  :func:`build_trainer` picks the device and makes the run's parts in one call
(:func:`gan_cli.build.build_run`: data, nets, objective, regularisers, augment pipe, evaluator, loggers); the
:class:`Trainer` adds what training needs around them (several processes, the EMA of G, the speed path,
optimisers, seed streams) and restores a checkpoint.  Per generator step: the objective's critic steps, one
generator step (:mod:`gan_cli.training.step`: every call of D goes through the one path into D), then the
periodic tasks (:mod:`gan_cli.training.tasks`: logging with its one host sync, the non-finite guard, progress,
pictures, evaluations, checkpoints).  At the end the final checkpoint is written *before* the final
evaluation, so a metric that fails never costs the trained weights.

The loop knows no objective, net, regulariser or data set by name.
"""
from __future__ import annotations

import math
import signal
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from omegaconf import DictConfig

from gan_cli import seeds
from gan_cli.build import RunParts, build_run, flat_hparams, pick_device, plain_config
from gan_cli.config import OnNonFinite, UserError, validate
from gan_cli.files import write_json
from gan_cli.runs import checkpoint as ck
from gan_cli.runs import records
from gan_cli.runs.hints import resume_command
from gan_cli.training import dist
from gan_cli.training.ema import EMA
from gan_cli.training.signals import Diverged, Interrupted, Stop, graceful_signals, interruptible
from gan_cli.training.speed import SpeedPath
from gan_cli.training.step import DPath, discriminator_loss, generator_loss
from gan_cli.training.tasks import BestCheckpoint, Evaluation, all_finite, make_tasks

__all__ = ["Trainer", "build_trainer", "Diverged", "Interrupted", "grad_norm"]


#: a conditional picture shows at most this many classes (rows)
CLASS_ROWS = 100


def class_grid(z: torch.Tensor, n_classes: int, max_rows: int = CLASS_ROWS):
    """``(latents, classes, columns)`` of a class-conditional picture: one row per class (the first ``max_rows``
    classes), ``len(z) // rows`` columns (at least 1), column j the latent ``z[j]`` in every row."""
    rows = min(int(n_classes), max_rows)
    cols = max(len(z) // rows, 1)
    zs = z[:cols].repeat(rows, 1)
    cs = torch.arange(rows, device=z.device).repeat_interleave(cols)
    return zs, cs, cols


def grad_norm(module: torch.nn.Module) -> torch.Tensor:
    grads = [p.grad.detach().norm() for p in module.parameters() if p.grad is not None]
    return torch.stack(grads).norm() if grads else torch.zeros(())


def build_trainer(cfg: DictConfig, run_dir: Path, resume_state: dict | None = None,
                  resume_from: Path | str | None = None) -> "Trainer":
    """A :class:`Trainer` for ``cfg`` in ``run_dir`` (this process's rank of a multi-process run), resumed from
    ``resume_state`` (a loaded checkpoint, file ``resume_from``) when given."""
    validate(cfg)
    ctx = dist.context()  # rank and world size (gan_cli.training.dist); rank 0 alone writes the run folder
    device = ctx.device(pick_device(cfg.device))
    # CPU kernels are deterministic for a fixed thread count already; turning on
    # torch.use_deterministic_algorithms there made matmuls ~40x slower (measured), so it
    # is only used for cuDNN, whose autotuner would otherwise pick kernels per run.
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = bool(cfg.deterministic)
        torch.backends.cudnn.benchmark = not cfg.deterministic
    parts = build_run(cfg, device, ctx.rank, ctx.world)
    return Trainer(cfg, parts, run_dir, resume_state, resume_from)


class Trainer:
    """Holds the state of one run; ``run()`` trains it to ``cfg.steps`` generator steps."""

    def __init__(self, cfg: DictConfig, parts: RunParts, run_dir: Path, resume_state: dict | None = None,
                 resume_from: Path | str | None = None):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.resume_from = resume_from  # the checkpoint file of resume_state, named in errors
        self.ctx = dist.context()
        self.device, self.data, self.info = parts.device, parts.data, parts.data.info
        self.objective, self.regularizers, self.augment = parts.objective, parts.regularizers, parts.augment
        self.cond = parts.cond  # class conditioning (gan_cli.cond), or None
        self.evaluator, self.loggers, self.latent_dim = parts.evaluator, parts.loggers, parts.latent_dim
        if not self.ctx.is_main:  # ranks > 0 write nothing
            from gan_cli.loggers import Loggers

            self.loggers = Loggers()
        else:  # MLflow / W&B in processes of their own (logger.<name>.background): their cost overlaps training
            from gan_cli.loggers.background import in_background

            self.loggers = in_background(self.loggers)
        self.G, self.D = self.ctx.prepare(parts.G, parts.D, bool(cfg.dist.sync_bn))
        if self.ctx.local_batch(cfg.data.batch_size) < 2 and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in self.D.modules()):
            raise UserError(f"a batch of 1 per process cannot train a batch-norm discriminator: use data.batch_size>="
                            f"{2 * self.ctx.world} or model.d_norm=none.")
        # the EMA generator (ema.beta > 0) is what evaluations and pictures sample from
        self.ema = EMA(self.G, float(cfg.ema.beta), bool(cfg.ema.rampup)) if cfg.ema.beta > 0 else None
        # the speed path (speed.*): channels_last in place, compiled G/D for the hot loop (self.speed.G/.D),
        # autocast, fused optimisers; self.G / self.D stay the plain modules (checkpoints, EMA, evaluation)
        self.speed = SpeedPath(cfg.speed, self.device, self.G, self.D, self.info.kind,
                               guard="skip" if cfg.guard.on_nonfinite == OnNonFinite.skip else "stop")
        self.opt_g = self.speed.optimizer(self.G.parameters(), cfg.model.opt_g)
        self.opt_d = self.speed.optimizer(self.D.parameters(), cfg.model.opt_d)
        # model.opt_*.decay: (optimiser, base lr, decay, shape) of the optimisers whose lr decays, read once
        self.decaying = [(opt, float(o.lr), float(o.get("decay", 1.0)), str(o.get("decay_shape", "exp"))) for opt, o in
                         ((self.opt_g, cfg.model.opt_g), (self.opt_d, cfg.model.opt_d)) if float(o.get("decay", 1.0)) != 1.0]
        # Modules of G and D with a schedule of their own (net.fourier's coarse-to-fine features): told the
        # fraction of the run done before each step, from the step count alone (a resumed run continues it).
        self.scheduled = [m for net in (self.G, self.D) for m in net.modules() if callable(getattr(m, "set_progress", None))]
        # One stream per purpose (gan_cli.seeds): logging cadence never changes the trajectory.
        self.gen = seeds.generator(cfg.seed, "train", self.device, self.ctx.rank)
        self.est_gen = seeds.generator(cfg.seed, "estimate", self.device, self.ctx.rank)
        if self.augment is not None:
            self.augment.bind(seeds.generator(cfg.seed, "augment", self.device, self.ctx.rank))
        self.fixed_z = torch.randn(cfg.num_image_samples, self.latent_dim,
                                   generator=seeds.generator(cfg.seed, "fixed_z")).to(self.device)
        self.fixed_c, self.grid_columns = None, None  # None: a square grid
        if self.cond is not None:  # the picture: one row per class, the same latents along each column
            self.fixed_z, self.fixed_c, self.grid_columns = class_grid(self.fixed_z, self.cond.n_classes)
        # the one path into D: augment pipe -> the regularisers' input transforms -> packing -> D(x, c)
        self.path = DPath(self.speed.D, self.augment, [r for r in self.regularizers.values() if r.has_transform],
                          parts.pack, self.gen)
        self.best = BestCheckpoint(str(cfg.ckpt_best), self.evaluator, self.run_dir) if cfg.ckpt_best else None
        self.step = 0
        self.skips = 0
        self.last_host: dict = {}
        self.last_extra: dict = {}
        self._zero_acc()
        if resume_state is not None:
            from gan_cli.training.state import restore

            restore(self, resume_state)

    # -- state ---------------------------------------------------------------
    def _zero_acc(self):
        z = lambda: torch.zeros((), device=self.device)  # noqa: E731
        self.acc = {"loss/d": z(), "loss/g": z(), "n": 0}

    def state_dict(self, ranks_rng: list | None = None) -> dict:
        """What resuming needs, and no logs (:func:`gan_cli.training.state.trainer_state`)."""
        from gan_cli.training.state import trainer_state

        return trainer_state(self, ranks_rng)

    # -- one step ------------------------------------------------------------
    def noise(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=gen, device=self.device)

    def classes(self, n: int, gen: torch.Generator):
        """The classes of ``n`` generated samples (cond.sample), or None for an unconditional run (no draw)."""
        return self.cond.draw(n, gen, self.device) if self.cond is not None else None

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
        schedule), with ``fraction = step / (steps - 1)``: ``model.opt_*.decay``'s lr, ``lr * decay^fraction``
        (``decay_shape=exp``) or ``lr * (1 - (1 - decay) * fraction)`` (``linear``), and the modules with a
        ``set_progress(fraction)`` method."""
        fraction = self.step / max(int(self.cfg.steps) - 1, 1)
        for opt, lr, decay, shape in self.decaying:
            for group in opt.param_groups:
                group["lr"] = lr * (1 - (1 - decay) * fraction) if shape == "linear" else lr * decay ** fraction
        for m in self.scheduled:
            m.set_progress(fraction)

    def train_step(self, want_norms: bool) -> dict:
        """The objective's critic steps, then one generator step. Returns device scalars (grad norms)."""
        self.schedule()
        obj, bs = self.objective, self.ctx.local_batch(self.cfg.data.batch_size)  # data.batch_size is the global batch
        G, fast = self.speed.G, self.speed  # G: compiled when speed.compile (same weights)
        out = {}
        self.D.requires_grad_(True)
        bad_d = bad_g = False  # skip mode: a skipped (non-finite) step stays out of the logged means
        for _ in range(obj.critic_steps(self.step)):
            with fast.autocast(self.opt_d):  # bf16/fp16 forward passes when speed.amp is on
                real, c_real = self.data.sample(bs, self.gen)
                c_fake = self.classes(bs, self.gen)  # None: unconditional (G and D ignore the labels)
                with torch.no_grad():
                    fake = G(self.noise(bs, self.gen), c_fake)
                loss_d, real_out = discriminator_loss(obj, self.regularizers, self.path, real, c_real, fake, c_fake,
                                                      self.cond)
            self.opt_d.zero_grad(set_to_none=True)
            fast.backward(loss_d, self.opt_d)  # scaled under fp16
            loss_d = self.ctx.reduce_grads(self.D, loss_d)  # several processes: mean gradients and loss over the ranks
            bad_d = self._skip_bad(loss_d, self.opt_d)
            if not bad_d:
                fast.step(self.opt_d)
            obj.after_d_step(self.D)  # e.g. WGAN's weight clipping
            if self.augment is not None:  # an adaptive pipe (ADA) follows D's outputs on the real batches
                seen = real_out.detach()
                if self.ctx.active and getattr(self.augment, "adaptive", False):
                    seen = self.ctx.gather_cat(seen)  # every rank's, so every rank's p stays the same
                self.augment.observe(seen)
        if want_norms:
            out["grad_norm/d"] = grad_norm(self.D)
        self.D.requires_grad_(False)  # G step: no gradients into D's parameters
        with fast.autocast(self.opt_g):
            c_fake = self.classes(bs, self.gen)
            fake = G(self.noise(bs, self.gen), c_fake)
            # G's loss reads the last D step's real batch where it needs one (relativistic losses, the unroll)
            loss_g = generator_loss(obj, self.regularizers, self.path, fake, c_fake, real, c_real, self.cond)
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
        """The divergence estimate at the current D on a held-out batch (not used for training): D through the
        path's packing only (no augmentation, no input noise), on the data as it is."""
        n = -(-self.cfg.estimate_batch // self.ctx.world)  # each rank's share (rounded up)
        real, c_real = self.data.sample(n, self.est_gen)
        c_fake = self.classes(n, self.est_gen)
        fake = self.G(self.noise(n, self.est_gen), c_fake)
        real_out = self.path(real, c_real, clean=True, eager=True)
        fake_out = self.path(fake, c_fake, clean=True, eager=True)
        return self.objective.estimate(self.ctx.gather_cat(real_out), self.ctx.gather_cat(fake_out))

    # -- logging -------------------------------------------------------------
    def log_scalars(self, extra: dict) -> dict:
        """The logging interval's scalars, read in one host sync, to the loggers and ``scalars.jsonl``."""
        n = max(self.acc["n"], 1)
        vals = {k: self.acc[k] / n for k in ("loss/d", "loss/g")}
        vals[self.objective.estimate_tag] = self.estimate()
        if hasattr(self.G, "log_scalars"):  # parametric toy generators: theta / mu, sigma under gen/...
            vals.update(self.G.log_scalars())
            if self.ema is not None:  # and the EMA generator's, which evaluations sample from, under gen_ema/...
                vals.update({"gen_ema/" + k.split("/", 1)[1]: v for k, v in self.ema.model.log_scalars().items()})
        if self.augment is not None:
            vals.update(self.augment.log_scalars())
        vals.update(extra)
        # One host sync for all scalars of this interval.
        host = dict(zip(vals.keys(), torch.stack([v.float().reshape(()) for v in vals.values()]).cpu().tolist()))
        host["lr/g"] = self.opt_g.param_groups[0]["lr"]
        host["lr/d"] = self.opt_d.param_groups[0]["lr"]
        if self.cfg.guard.on_nonfinite == OnNonFinite.skip:
            host["guard/skipped_steps"] = float(self.skips)
        self.loggers.log_scalars(host, self.step)
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

    # -- checkpoints ---------------------------------------------------------
    def save(self) -> Path:
        path = ck.ckpt_path(self.run_dir, self.step)
        ranks_rng = self.ctx.gather_objects(self._rng())  # several processes: every rank saves together
        if self.ctx.is_main:
            ck.save_checkpoint(path, self.state_dict(ranks_rng))
            ck.rotate_checkpoints(self.run_dir, self.cfg.keep_ckpts)
        return path

    def _rng(self) -> dict:
        from gan_cli.training.state import rng_state

        return rng_state(self)

    def checked_save(self) -> Path:
        self.loggers.flush()  # events up to this step are on disk before the checkpoint says so
        # Never overwrite good checkpoints with NaN weights.
        if not (all_finite(self.G) and all_finite(self.D)):
            self.check_finite({"loss/d": float("nan"), "loss/g": float("nan"), self.objective.estimate_tag: float("nan")})
        return self.save()

    def _saved_now(self) -> Path:
        """The checkpoint of the current step: the one on disk, or a new one."""
        path = ck.ckpt_path(self.run_dir, self.step)
        return path if self.ctx.from_main(path.exists()) else self.checked_save()

    # -- the run ---------------------------------------------------------------
    def run(self, progress=None) -> dict:
        cfg, main = self.cfg, self.ctx.is_main
        if self.step and main:  # drop what a killed run logged after its last checkpoint
            records.trim(self.run_dir / records.SCALARS, self.step)
            records.trim(self.run_dir / records.METRICS, self.step)
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.loggers.start(self.run_dir, self.step, resume=self.step > 0)
            if self.step == 0:
                self.loggers.log_config(plain_config(cfg))
        tasks = make_tasks(cfg, self.best, progress)
        final_eval = next(t for t in tasks if isinstance(t, Evaluation))
        sig: dict = {"collective": self.ctx.active}
        # a run resumed at its last step (its final evaluation was interrupted) reports its last logged scalars
        if self.step >= cfg.steps and main:
            self.last_host = {k: v for k, v in (records.read(self.run_dir / records.SCALARS) or [{}])[-1].items()
                              if k not in ("step", "time")}
        metrics: dict = {}
        ending = "failed"  # what the trackers are told when they close
        # wall and process CPU time of the training steps (CPU: all threads of this process; on a shared
        # machine the wall time depends on the load, the CPU time much less)
        t0, c0, s0 = time.perf_counter(), time.process_time(), self.step
        try:
            with graceful_signals(sig):
                try:
                    while self.step < cfg.steps:
                        self.last_extra = self.train_step(want_norms=tasks[0].due(self.step + 1, cfg.steps))
                        self.step += 1
                        synced = False  # several processes: the ranks agree on signals at logging / checkpoint steps
                        for task in tasks:
                            if task.due(self.step, cfg.steps) and (main or not task.main_only):
                                with interruptible(sig) if task.interruptible else nullcontext():
                                    task.run(self)
                                synced |= task.collective
                        if self.ctx.share_signal(sig, synced):  # several processes: any rank's signal
                            raise Stop()
                    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
                    final_path = self._saved_now()  # the weights first: nothing after this can lose them
                    with interruptible(sig):
                        metrics = final_eval.run(self)
                except Stop:
                    path = self._saved_now()
                    ending = "interrupted"
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
                "final": {**self.last_host, **metrics},
                "metrics": metrics,
                "suite": self.evaluator.suite,
                "preprocess": self.evaluator.preprocess,  # Inception preprocessing mode (None: no Inception)
            }
            if main:
                self._log_hparams(self.last_host, metrics)
                write_json(self.run_dir / "results.json", result)  # before the trackers close: they keep a copy
                for name in ("results.json", records.METRICS):
                    if (self.run_dir / name).is_file():
                        self.loggers.log_artifact(self.run_dir / name)
            ending = "completed"
            return result
        finally:
            self.loggers.close(ending)

    def _log_hparams(self, final: dict, metrics: dict):
        values = {f"final/{k}": float(v) for k, v in final.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        values.update({f"metrics/{k}": float(v) for k, v in metrics.items() if math.isfinite(v)})
        self.loggers.log_hparams(flat_hparams(self.cfg, self.evaluator.preprocess, self.regularizers), values)
        # metrics/* were logged by the evaluation
        self.loggers.log_scalars({k: v for k, v in values.items() if k.startswith("final/")}, self.step)
