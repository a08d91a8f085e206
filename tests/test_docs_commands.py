"""Every command the manual shows is run, at tiny size, or is marked as needing a GPU, the internet or a Slurm
cluster (a comment ``# needs a GPU ...`` on its line, or among the comments that open its block).

Each page's commands run in order in a folder of their own, as a reader would paste them: a placeholder takes the
value the reader would give it -- ``<run>`` / ``outputs/<date>/<time>_...`` the newest run folder (a tiny image run
when the page made none), ``multirun/<date>/<time>`` the newest sweep, ``<images>`` a folder of real images,
``$PWD`` the folder; ``[optional]`` arguments are left out and ``a|b`` takes ``a``.  Tiny size: the shown
arguments, then the few keys that make a run small (2 steps, batch 24, 200 evaluation samples, one seed of a seed
sweep, two Optuna trials, the sequential launcher instead of joblib's processes) and small IDX files in place of
Fashion-MNIST.  Servers (TensorBoard, ``mlflow ui``) are started on a free port and must answer; benchmark scripts
take their smallest arguments.  ``gan-train`` / ``gan-eval`` run in this process (``run_cli``), the rest as
processes.  A command that fails names its page and line."""
from __future__ import annotations

import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest
from conftest import BIN, compose_train, process_env, run_cli
from test_docs import PAGES as EVERY_PAGE
from test_docs import _first as first_value

ROOT = Path(__file__).resolve().parents[1]
PAGES = [p for p in EVERY_PAGE if p.parent.name != "reference"]  # (the reference shows no commands)

#: why a shown command is not run here (its comment says so, as the reader sees it)
MARK = re.compile(r"needs (a GPU|the internet|a Slurm cluster)")
SHELL_BLOCKS = ("bash", "sh", "shell", "console")


@dataclass
class Shown:
    page: Path
    line: str  # as shown (continuations joined)
    cmd: str  # without its comment
    mark: Optional[str]  # GPU / internet / Slurm cluster: not run here

    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}: {self.line}"


def _blocks(page: Path):
    return re.findall(r"```([^\n`]*)\n(.*?)```", page.read_text(), flags=re.S)


def shown(page: Path) -> list[Shown]:
    out = []
    for lang, block in _blocks(page):
        if lang.strip() not in SHELL_BLOCKS:
            continue
        lines = re.sub(r"\\\n\s*", "", block).splitlines()
        block_mark = None
        for line in lines:  # the block's leading comments (a script's #! and #SBATCH lines among them)
            if not line.strip().startswith("#"):
                break
            block_mark = block_mark or MARK.search(line)
        for line in lines:
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            cmd, _, comment = s.partition(" #")
            m = block_mark or MARK.search(comment)
            out.append(Shown(page, s, cmd.strip(), m.group(1) if m else None))
    return out


ALL = [c for p in PAGES for c in shown(p)]


def test_every_code_block_says_what_it_holds():
    """A block without a language could be a command or output: commands are ``bash``, the rest ``text`` (or its
    language), so the commands below are all the commands shown."""
    for page in PAGES:
        for lang, block in _blocks(page):
            assert lang.strip(), f"{page.relative_to(ROOT)}: a code block without a language: {block[:60]!r}"


def test_the_manual_shows_commands_and_marks_few():
    run = [c for c in ALL if not c.mark]
    assert len(run) >= 60 and len(ALL) - len(run) <= 20, (len(run), len(ALL))


# ----------------------------------------------------------------------------- a reader at a tiny size

#: gan-train keys that make a run tiny (replacing a shown value)
TINY_TRAIN = {"steps": "2", "log_every": "1", "image_every": "0", "estimate_batch": "48", "data.batch_size": "24",
              "metrics.num_samples": "200", "progress": "false", "device": "cpu"}
TINY_EVAL = {"metrics.num_samples": "200", "device": "cpu"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(argv: list[str], port: int, cwd: Path, path: str = "/", expect: str = "", timeout: float = 180.0) -> str:
    """Start a server, wait until http://127.0.0.1:port<path> answers 200 with ``expect`` in its body, stop it; ''
    or what went wrong."""
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return f"exited {proc.returncode}: {proc.stdout.read()[-1500:]}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
                    body = r.read().decode(errors="replace")
                    if r.status == 200 and expect in body:
                        return ""
                    return f"answered {r.status} without {expect!r}: {body[:300]}"
            except OSError:
                time.sleep(0.5)
        return "no answer within the time"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


class Reader:
    """One page's commands, pasted in order into ``cwd``."""

    def __init__(self, cwd: Path, fashion: Path, cache: Path):
        self.cwd, self.fashion, self.cache = cwd, fashion, cache

    # -- what the placeholders stand for
    def _runs(self, images: bool = False) -> list[Path]:
        runs = [p.parent for p in (self.cwd / "outputs").glob("*/*/results.json")]
        if images:
            runs = [r for r in runs if "image_size" in (r / ".hydra" / "config.yaml").read_text()]
        return sorted(runs, key=lambda r: (r / "results.json").stat().st_mtime)

    def run_folder(self, images: bool = False) -> str:
        if not self._runs(images):  # the page made none: the reader's own (an image run serves every command)
            self.train(["data=fashion_mnist"])
        return str(self._runs(images)[-1].relative_to(self.cwd))

    def sweep_folder(self) -> str:
        sweeps = [p for p in (self.cwd / "multirun").glob("*/*") if p.is_dir()]
        assert sweeps, "a sweep placeholder before any sweep on the page"
        return str(max(sweeps, key=lambda p: p.stat().st_mtime).relative_to(self.cwd))

    def images_folder(self) -> str:
        if not (self.cwd / "real_images").is_dir():
            self.eval(["data=fashion_mnist", "export=real_images", "export.split=test", "export.n=200"])
        return "real_images"

    def resolve(self, cmd: str) -> list[str]:
        """The command's arguments with the reader's values for its placeholders."""
        exporting = "export=" in cmd
        cmd = cmd.replace("multirun/<date>/<time>", self.sweep_folder()) if "multirun/<date>/<time>" in cmd else cmd
        for pat in (r"outputs/<date>/<time>_\.\.\.", r"<run[^>]*>"):
            if re.search(pat, cmd):
                cmd = re.sub(pat, self.run_folder(images=exporting), cmd)
        cmd = re.sub(r"export=<[^>]*>", "export=exported", cmd)
        if re.search(r"<(images|folder of images|dir)>", cmd):
            cmd = re.sub(r"<(images|folder of images|dir)>", self.images_folder(), cmd)
        cmd = cmd.replace("$PWD", str(self.cwd))
        out = []
        for arg in shlex.split(cmd):
            if arg.startswith("["):
                continue  # optional
            assert "<" not in arg and "..." not in arg, f"no value for the placeholder in {arg!r}"
            if "=" in arg and "|" in arg.split("=", 1)[1]:
                arg = arg.split("|", 1)[0]  # a|b: the first
            out.append(arg)
        return out

    # -- gan-train / gan-eval, tiny
    def _data_keys(self, argv: list[str], compose) -> list[str]:
        """Fashion-MNIST (itself, or the base of stacked data) from the small IDX files, into the folder."""
        cfg = compose(argv)
        data, keys = cfg.data, []
        if "fashion_mnist" in (data.get("name"), data.get("base")):
            keys += [f"data.system_root={self.fashion}", f"data.root={self.cwd / 'data'}"]
        net = cfg.get("net") or {}
        if "g_channels" in net:  # the ResNets at a tenth of their width
            keys += ["net.g_channels=32", "net.d_channels=32"]
        if data.get("name") == "stacked" and not any(a.startswith("data.n=") for a in argv):
            keys.append("data.n=1000")  # triples drawn (128,000 by default)
        return keys

    @staticmethod
    def _tiny(argv: list[str], tiny: dict) -> list[str]:
        keys = {a.split("=", 1)[0] for a in argv if "=" in a}
        out = []
        for a in argv:
            k, eq, v = a.partition("=")
            if eq and k in tiny:
                a = f"{k}={tiny[k]}"
            elif eq and k == "seed":
                a = f"seed={v.split(',')[0]}"  # one seed of a seed sweep
            elif eq and k == "hydra/launcher" and v == "local":
                a = "hydra/launcher=basic"  # jobs in this process (joblib's processes: tests/test_launchers.py)
            elif eq and k in ("hydra.sweeper.n_trials",):
                a = f"{k}=2"
            elif eq and k == "export.n":
                a = f"export.n={min(int(v), 200)}"
            out.append(a)
        return out + [f"{k}={v}" for k, v in tiny.items() if k not in keys]

    def train(self, argv: list[str]):
        def compose(a):
            return compose_train(*[x for x in a if "=" in x and not x.startswith("hydra")])
        if any(a.startswith("resume=") for a in argv):  # the run's own config; a few more steps
            return self._check("gan-train", self._tiny(argv, {"steps": "4", "progress": "false", "device": "cpu"}))
        argv = self._tiny(argv, TINY_TRAIN)
        if any(a.startswith("hparams_search=") for a in argv):  # the study's value at the tiny sample count
            metric = compose([_first(a) for a in argv if "=" in a and not a.startswith("hydra")]).optimized_metric
            argv.append("optimized_metric=" + re.sub(r"[0-9]+(\.[0-9]+)?k?", TINY_TRAIN["metrics.num_samples"], metric,
                                                     count=1))
        multirun = "-m" in argv or "--multirun" in argv
        if multirun and not any(a.startswith("seed=") for a in argv):
            argv.append("seed=0")  # an experiment's seed sweep: one seed
        if any(a.startswith("hparams_search=") for a in argv) and not any("n_trials" in a for a in argv):
            argv.append("hydra.sweeper.n_trials=2")
        if not any(a.startswith("hydra.searchpath") for a in argv):  # (a plugin's configs: toy data, extending.md)
            argv += self._data_keys([_first(a) for a in argv if "=" in a and not a.startswith("hydra")], compose)
        argv.append(f"metrics.cache_dir={self.cache}")
        return self._check("gan-train", argv)

    def eval(self, argv: list[str]):  # noqa: A003
        from hydra import compose as hcompose, initialize_config_module

        def compose(a):
            from gan_cli.cli.evaluate import eval_argv

            with initialize_config_module(config_module="gan_cli.conf", version_base="1.3"):
                return hcompose("eval", overrides=[x for x in eval_argv(a) if "=" in x])
        argv = self._tiny(argv, {} if any(a.startswith("sweep=") for a in argv) else TINY_EVAL)
        if any(a.startswith("data=") for a in argv):
            argv += self._data_keys(argv, compose)
        if not any(a.startswith("sweep=") for a in argv):
            argv.append(f"metrics.cache_dir={self.cache}")
        return self._check("gan-eval", argv)

    def _check(self, tool, argv):
        t0 = time.perf_counter()
        r = run_cli(tool, argv, self.cwd)
        print(f"{time.perf_counter() - t0:6.1f} s  {tool} {' '.join(argv)}")
        assert r.returncode == 0, f"{tool} {' '.join(argv)}\n{r.stderr[-3000:]}"
        return r

    # -- one shown command
    def run(self, c: Shown) -> None:
        env = dict(re.findall(r"([A-Z_]+)=(\S+) ", re.match(r"^(?:[A-Z_]+=\S+ )*", c.cmd).group(0)))
        text = re.sub(r"^(?:[A-Z_]+=\S+ )*", "", c.cmd)
        tool_word, _, rest = text.partition(" ")
        tool = Path(tool_word).name
        paths = [str(self.cwd / p) for p in env.pop("PYTHONPATH", "").split(":") if p]
        for p in paths:  # a plugin in the repository (examples/plugin), as the reader's checkout has it
            top = Path(p).relative_to(self.cwd).parts[0]
            if not (self.cwd / top).exists():
                (self.cwd / top).symlink_to(ROOT / top)
        sys.path[:0] = paths  # PYTHONPATH, for a command run in this process
        try:
            self._run(c, tool, rest)
        finally:
            del sys.path[:len(paths)]

    def serve(self, c: Shown, argv: list[str], path: str = "/", expect: str = "") -> None:
        """A server the page shows (TensorBoard, mlflow ui), on a free port of this host: it must answer."""
        port = _free_port()
        err = _answers([*argv, "--host", "127.0.0.1", "--port", str(port)], port, self.cwd, path, expect)
        assert not err, f"{c.where()}: {err}"

    def _run(self, c: Shown, tool: str, rest: str) -> None:
        args = self.resolve(rest)
        if tool == "gan-train":
            self.train(args)
        elif tool == "gan-eval":
            self.eval(args)
        elif tool == "make" and args == ["tensorboard"]:
            recipe = subprocess.run(["make", "-n", "-C", str(ROOT), "tensorboard"], capture_output=True, text=True)
            argv = shlex.split([ln for ln in recipe.stdout.splitlines() if "tensorboard --" in ln][0])
            self.serve(c, [str(ROOT / argv[0]) if "/" in argv[0] else argv[0], *argv[1:]])
        elif tool == "tensorboard":
            self.serve(c, [str(BIN / "tensorboard"), *args])
        elif tool == "mlflow" and args[:1] == ["ui"]:
            # the runs the page's commands logged are there (REST API; the experiment is named after the data set)
            self.serve(c, [str(BIN / "mlflow"), *args], "/api/2.0/mlflow/experiments/search?max_results=100",
                       '"name": "ring8"')
        elif tool == "python" and args and args[0].startswith("benchmarks/"):
            script = args[0]
            small = SMALL_ARGS[script]
            r = subprocess.run([sys.executable, str(ROOT / script), *args[1:], *small], cwd=self.cwd,
                               capture_output=True, text=True, timeout=600, env=process_env())
            assert r.returncode == 0, f"{c.where()}\n{r.stdout[-1500:]}\n{r.stderr[-1500:]}"
        else:
            raise AssertionError(f"{c.where()}: no way to run this command here: run it in a test, or mark it "
                                 f"(# needs a GPU / the internet / a Slurm cluster)")


#: the smallest arguments of the benchmark scripts the manual shows (appended: they win over the shown ones)
SMALL_ARGS = {
    "benchmarks/pacgan_table.py": ["--steps", "2", "--seeds", "1", "--subset-steps", "", "--n-jobs", "1",
                                   "metrics.num_samples=200", "image_every=0"],
    "benchmarks/bench_data.py": ["--batches", "2", "--folder-images", "16", "--workers", "0"],
}


def _first(arg: str) -> str:
    """``k=a,b,c`` -> ``k=a`` (a sweep's first value); lists ``k=[a,b]`` stay."""
    k, _, v = arg.partition("=")
    return f"{k}={first_value(v)}"


@pytest.fixture(scope="module")
def small_fashion(tmp_path_factory) -> Path:
    """Fashion-MNIST's four IDX files, small (600 training and 200 test images): what data=fashion_mnist reads."""
    from idx import fake_mnist, write_mnist_raw

    root = tmp_path_factory.mktemp("fashion_idx")
    write_mnist_raw(root, fake_mnist(n_train=600, n_test=200), gz=True)
    return root


@pytest.fixture(scope="module")
def metrics_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("docs_metrics_cache")


@pytest.fixture
def quick_classifiers(monkeypatch):
    """The domain classifier and CAS's classifier train 20 steps instead of their recipe's 500 or more: what they
    score is not the subject here (tests/test_extractors.py and tests/test_conditional.py check their numbers)."""
    import dataclasses

    from gan_cli.metrics import classifier

    train = classifier.train_classifier

    def quick(images, labels, num_classes, settings=classifier.TrainSettings(), device="cpu"):
        return train(images, labels, num_classes, dataclasses.replace(settings, epochs=1, min_steps=20), device)

    monkeypatch.setattr(classifier, "train_classifier", quick)


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if any(not c.mark for c in shown(p))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_on_the_page_runs(page, tmp_path, small_fashion, metrics_cache, quick_classifiers):
    reader = Reader(tmp_path, small_fashion, metrics_cache)
    for c in shown(page):
        if not c.mark:
            reader.run(c)
