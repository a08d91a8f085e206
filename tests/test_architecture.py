"""The house rules: components built from config, objectives owning their regularisers, one
evaluation service, one seed table, no import cycles, run records outside the checkpoints."""
import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_train

from gan_cli import seeds
from gan_cli.config import UserError

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "gan_cli"


# ----------------------------------------------------------------------------- imports


def import_graph() -> dict[str, set[str]]:
    """gan_cli module -> the gan_cli modules it imports anywhere (function-level imports included)."""
    mods = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    graph = {}
    for name, p in mods.items():
        pkg = name if p.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                deps.add(base)
                deps |= {f"{base}.{a.name}" for a in node.names}
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def find_cycle(graph):
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (c := visit(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_no_import_cycle_in_gan_cli():
    """Run as a command: python -m pytest tests/test_architecture.py -k cycle (prints the cycle if any)."""
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


#: the floors of the house, bottom up: a module imports from its own floor or below, never above (function-level
#: imports included); on the training / lab floor neither imports the other
LAYERS = {
    0: ("", "config", "seeds", "files"),
    1: ("objectives", "nets", "data", "metrics", "regularizers", "augment", "cond", "loggers", "viz", "truncation"),
    2: ("build", "runs"),
    3: ("training", "lab"),
    4: ("cli",),
}
_FLOOR = {part: floor for floor, parts in LAYERS.items() for part in parts}


def floor_of(module: str) -> tuple[int, str]:
    part = module.split(".")[1] if "." in module else ""
    assert part in _FLOOR, f"{module}: add gan_cli.{part} to LAYERS in tests/test_architecture.py"
    return _FLOOR[part], part


def test_dependencies_point_one_way():
    """cli -> (training, lab) -> (build, runs) -> components -> (config, seeds, files)."""
    bad = []
    for m, deps in sorted(import_graph().items()):
        fm, pm = floor_of(m)
        for d in sorted(deps):
            fd, pd = floor_of(d)
            if fd > fm or (fd == fm == 3 and pd != pm):
                bad.append(f"{m} -> {d}")
    assert not bad, "imports that run back up: " + "; ".join(bad)


def test_every_package_ships_in_the_wheel():
    """A gan_cli sub-package that pyproject's packages list lacks imports in an editable install and is missing
    from a wheel."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in PKG.rglob("__init__.py")}
    assert not found - listed, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(found - listed)}"


def test_no_module_over_500_lines():
    """Modules stay about 500 lines or less (a longer one holds more than one concern: split it)."""
    long = {str(p.relative_to(ROOT)): n for p in PKG.rglob("*.py") if (n := len(p.read_text().splitlines())) > 520}
    assert not long, f"split these by concern: {long}"


def test_no_closed_lists_of_component_names():
    """Nothing in Python lists the built-in models, nets or data sets by name."""
    names = {"wgan_gp", "fashion_mnist", "grid25", "mog1d"}
    for p in PKG.rglob("*.py"):
        tree = ast.parse(p.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)) or (isinstance(node, ast.Dict)):
                elts = node.keys if isinstance(node, ast.Dict) else node.elts
                consts = {e.value for e in elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
                assert len(consts & names) < 2, (p, consts & names)


def test_seeds_come_from_the_one_table():
    """No `seed + <n>` arithmetic outside gan_cli/seeds.py; every stream of one run has its own seed."""
    for p in PKG.rglob("*.py"):
        if p.name == "seeds.py":
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
                text = ast.unparse(node)
                assert "seed" not in text, (p, text)
    run = [s for s, base in [("init", 0), ("train", 0), ("estimate", 0), ("fixed_z", 0), ("pictures", 0),
                             ("pictures_real", 0), ("eval", 0)]]
    assert len({seeds.seed_for(0, s) for s in run}) == len(run)
    assert seeds.seed_for(5, "eval") == seeds.seed_for(0, "eval") + 5


# ----------------------------------------------------------------------------- objectives, regularisers, the step


class _Critic(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1), torch.nn.Flatten(0))

    def forward(self, x, c=None):  # every discriminator accepts the labels
        return self.net(x)


def _tiny_critic():
    torch.manual_seed(0)
    return _Critic()


def _built(*overrides):
    from gan_cli.build import build_objective, build_regularizers

    cfg = compose_train(*overrides)
    obj = build_objective(cfg.model)
    return obj, build_regularizers(cfg.reg, obj)


def test_wgan_gp_is_the_wasserstein_loss_with_the_penalty_its_preset_carries():
    from gan_cli.regularizers import GradientPenalty, gradient_penalty
    from gan_cli.training.step import DPath, discriminator_loss

    obj, regs = _built("model=wgan_gp")
    assert list(regs) == ["gp"] and isinstance(regs["gp"], GradientPenalty) and regs["gp"].weight == 10.0
    D = _tiny_critic()
    real, fake = torch.randn(16, 2), torch.randn(16, 2) + 1
    whole, _ = discriminator_loss(obj, regs, DPath(D, generator=torch.Generator().manual_seed(3)), real, None, fake,
                                  None)
    parts = obj.d_loss(D(real), D(fake)) + 10.0 * gradient_penalty(D, real, fake, torch.Generator().manual_seed(3))
    assert torch.equal(whole, parts)
    obj0, regs0 = _built("model=wgan_gp", "reg.gp.weight=0")
    assert torch.equal(discriminator_loss(obj0, regs0, DPath(D), real, None, fake, None)[0], obj0.d_loss(D(real), D(fake)))
    assert list(_built("model=wgan_gp", "reg=[r1]")[1]) == ["gp", "r1"]  # the preset's own first, then the list
    assert _built("model=wgan_gp", "~reg.gp")[1] == {}  # and it can be taken off


def test_wgan_clips_after_the_critic_step_and_others_do_not():
    from gan_cli.build import build_objective

    D = _tiny_critic()
    with torch.no_grad():
        for p in D.parameters():
            p.mul_(100)
    build_objective(compose_train("model=nsgan").model).after_d_step(D)
    assert max(p.abs().max().item() for p in D.parameters()) > 1
    build_objective(compose_train("model=wgan", "model.clip=0.05").model).after_d_step(D)
    assert max(p.abs().max().item() for p in D.parameters()) == pytest.approx(0.05)


def test_critic_schedule_belongs_to_the_objective():
    from gan_cli.build import build_objective

    w = build_objective(compose_train("model=wgan").model)
    assert [w.critic_steps(s) for s in (0, 24, 25, 26, 499, 500, 501, 1000)] == [100, 100, 5, 5, 5, 100, 5, 100]
    assert build_objective(compose_train("model=nsgan").model).critic_steps(0) == 1


@pytest.mark.parametrize("module", ["loop.py", "step.py", "tasks.py", "state.py"])
def test_the_loop_knows_no_objective_or_regulariser(module):
    tree = ast.parse((PKG / "training" / module).read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    assert not names & {"gp_weight", "clip", "gradient_penalty", "WGAN", "Wasserstein", "FGAN", "GAN", "NSGAN", "R1",
                        "GradientPenalty", "InstanceNoise", "Unrolled", "gamma", "r1_penalty"}
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert not strings & {"gan", "nsgan", "fgan", "wgan", "wgan_gp", "r1", "gp", "instance_noise", "unrolled"}


def test_d_is_called_in_one_place():
    """Every call of D in training goes through the one path into D (training/step.py's DPath): nothing else in
    gan_cli/training/ calls ``.D(`` / ``D(`` on the discriminator."""
    for p in (PKG / "training").glob("*.py"):
        if p.name == "step.py":
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                assert name != "D", f"{p.name}:{node.lineno} calls D directly: use the path into D"


def test_a_typo_or_wrong_type_in_a_component_is_rejected_at_compose_time():
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        compose_train("model=wgan_gp", "reg.gp.weight=abc")
    with pytest.raises(ConfigCompositionException):
        compose_train("reg=[r1]", "reg.r1.gama=1")  # a typo in a regulariser's key
    with pytest.raises(ConfigCompositionException):
        compose_train("model=wgan", "model.gpweight=1")  # no such key in WGAN's schema
    with pytest.raises(ConfigCompositionException):
        compose_train("model=nsgan", "model.divergence=kl")  # an f-GAN key on another model
    with pytest.raises(ConfigCompositionException):
        compose_train("data=ring8", "data.image_size=32")


def test_a_component_without_a_schema_is_checked_against_its_signature():
    from gan_cli.build import instantiate_component

    node = {"_target_": "gan_cli.objectives.gan.NSGAN", "name": "x", "n_critic": 2, "opt_g": {}}
    assert instantiate_component(node, "model").n_critic == 2  # opt_g: a run-level key of the group
    with pytest.raises(UserError, match="model.n_critc is not a parameter"):
        instantiate_component({**node, "n_critc": 2}, "model")
    with pytest.raises(UserError, match="cannot be imported"):
        instantiate_component({**node, "_target_": "nowhere.Nothing"}, "model")


# ----------------------------------------------------------------------------- the evaluation service


def _points_evaluator(*overrides, n=300):
    from gan_cli.build import build_data, build_evaluator

    cfg = compose_train(*overrides)
    src = build_data(cfg.data)
    return build_evaluator(cfg.metrics, cfg.data, src, "cpu", n), src


def test_metrics_names_selects_registered_metrics():
    ev, src = _points_evaluator("metrics.names=[w1,prdc]")
    out = ev(lambda k: src.sample(k, torch.Generator().manual_seed(1)).x)
    assert sorted(out) == sorted(["w1_300", "precision_300_k5", "recall_300_k5", "density_300_k5", "coverage_300_k5"])
    with pytest.raises(UserError, match="no metric 'nope'"):
        _points_evaluator("metrics.names=[nope]")
    with pytest.raises(UserError, match="applies to toy1d"):
        _points_evaluator("metrics.names=[gauss_fit]")  # ring8 is 2-D
    with pytest.raises(UserError, match="exists for the other kind"):
        _points_evaluator("metrics.names=[fid]")


def test_evaluator_reuses_the_trainers_real_data_and_computes_it_once(monkeypatch):
    ev, src = _points_evaluator("metrics=toy")
    calls = []
    orig = src.sample
    monkeypatch.setattr(src, "sample", lambda n, g=None: calls.append(n) or orig(n, g))
    fake = lambda k: orig(k, torch.Generator().manual_seed(2)).x  # noqa: E731
    a, b = ev(fake), ev(fake)
    assert calls == [300] and a.keys() == b.keys()


@pytest.mark.parametrize("name", sorted({m.name for m in __import__("gan_cli.metrics.registry", fromlist=["x"]).metrics("points")}))
def test_every_points_metric_runs_and_has_a_direction(name):
    from gan_cli.metrics.registry import direction

    data = "mog1d" if name == "gauss_fit" else "ring8"
    ev, src = _points_evaluator(f"data={data}", f"metrics.names=[{name}]", n=120)
    out = ev(lambda k: src.sample(k, torch.Generator().manual_seed(4)).x)
    assert out and all(np.isfinite(v) or k.startswith("rkl") for k, v in out.items())
    if name != "gauss_fit":
        assert all(direction(k) in ("min", "max") for k in out), out


@pytest.mark.parametrize("name", sorted({m.name for m in __import__("gan_cli.metrics.registry", fromlist=["x"]).metrics("features")
                                         if not m.images}))  # those reading images too: tests of their own
def test_every_feature_metric_runs_on_features_and_has_a_direction(name):
    from gan_cli.metrics.registry import MetricContext, direction, get_metric

    rng = np.random.default_rng(0)
    feats = lambda n: {"pool": rng.normal(size=(n, 8)), "logits": rng.normal(size=(n, 10)),  # noqa: E731
                       "mode": rng.integers(0, 1000, size=(n, 1)).astype(np.float32)}  # the stacked suite's
    info = type("I", (), {"kind": "image", "name": "x"})()
    labels = lambda n: rng.integers(0, 10, size=n)  # noqa: E731  (the conditional metrics read the classes)
    ctx = MetricContext(1200, "1.2k", info, 5, "clf", fake_labels=labels(1200), real_labels=labels(1200), n_classes=10)
    out = get_metric(name, "features").fn(feats(1200), feats(1200), ctx)
    assert out and all(np.isfinite(v) for v in out.values())
    assert all(direction(k) in ("min", "max") for k in out)


def test_kid_std_only_when_subsets_differ():
    from gan_cli.metrics.registry import MetricContext, get_metric

    rng = np.random.default_rng(1)
    info = type("I", (), {"kind": "image", "name": "x"})()
    f = lambda n: {"pool": rng.normal(size=(n, 8))}  # noqa: E731
    small = get_metric("kid", "features").fn(f(500), f(500), MetricContext(500, "500", info, 5, "clf"))
    assert list(small) == ["kid500_clf"]  # one subset = the whole set: no spread to report
    big = get_metric("kid", "features").fn(f(1500), f(1500), MetricContext(1500, "1.5k", info, 5, "clf"))
    assert set(big) == {"kid1.5k_clf", "kid1.5k_clf_std"} and big["kid1.5k_clf_std"] > 1e-6


def test_default_sample_counts_live_in_one_table():
    from gan_cli.metrics.registry import DEFAULT_SAMPLES

    ev, _ = _points_evaluator("metrics=toy", n=None)
    assert ev.n == DEFAULT_SAMPLES["toy2d"] == 2500
    where = [*(PKG / "metrics").glob("*.py"), *(PKG / "lab").glob("*.py"), *(PKG / "cli").glob("*.py"),
             *(PKG / "training").glob("*.py"), PKG / "build.py"]
    for p in where:
        if p.name != "registry.py":
            consts = {n.value for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.Constant)}
            assert not {2500, 10000} & consts, p


# ----------------------------------------------------------------------------- run records


def test_run_records_and_checkpoint_without_logs(tmp_path):
    from gan_cli.runs import checkpoint as ck
    from gan_cli.cli.train import train

    cfg = compose_train("steps=6", "log_every=2", "eval_every=2", "ckpt_every=2", "keep_ckpts=5", "image_every=0",
                        "estimate_batch=64", "metrics.num_samples=64", tmp_path=tmp_path)
    train(cfg)
    state = ck.load_checkpoint(ck.list_checkpoints(tmp_path)[-1])
    assert not {"history", "metric_history"} & set(state)
    scal = [json.loads(ln) for ln in (tmp_path / "scalars.jsonl").read_text().splitlines()]
    assert [r["step"] for r in scal] == [2, 4, 6] and all("grad_norm/g" in r and "time" in r for r in scal)
    met = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in met] == [2, 4, 6] and all("w1_64" in r and "time" in r for r in met)
    # a kill after step 4's checkpoint: what was logged after it is dropped on resume, then written once
    (tmp_path / "checkpoints" / "step_00000006.pt").unlink()
    (tmp_path / "status.json").write_text(json.dumps({"state": "interrupted", "step": 6}))
    (tmp_path / "results.json").unlink()
    train(compose_train(f"resume={tmp_path}", "steps=6", "progress=false"), [])
    met2 = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    scal2 = [json.loads(ln) for ln in (tmp_path / "scalars.jsonl").read_text().splitlines()]
    assert [r["step"] for r in met2] == [2, 4, 6] and [r["step"] for r in scal2] == [2, 4, 6]
    assert met2[:2] == met[:2] and met2[2]["w1_64"] == met[2]["w1_64"]  # bit-identical on the CPU


def test_every_conf_folder_ships_in_the_wheel():
    """A YAML folder under conf/ that pyproject's package-data does not list works in an editable install and is
    missing from a wheel (conf/experiment/pacgan/ was, once)."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["gan_cli.conf"]
    folders = {p.parent.relative_to(root / "conf").as_posix() for p in (root / "conf").rglob("*.yaml")}
    missing = sorted(f for f in folders if ("*.yaml" if f == "." else f"{f}/*.yaml") not in globs)
    assert not missing, f"add these conf folders to [tool.setuptools.package-data] in pyproject.toml: {missing}"
