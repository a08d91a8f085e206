"""docs/troubleshooting.md cannot drift: each line its table shows is produced, here, by the bad input it stands for
(the CLI in this process, exit status 2, the line on stderr), or names the test that produces it (a signal, a killed
rank, a diverging run, an offline download, a missing package).  A row added to the page without either fails."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "troubleshooting.md"


def rows() -> list[str]:
    return re.findall(r"^\| `(.+?)`(?: / [^|]*)? \|", PAGE.read_text(), flags=re.M)


def pattern(row: str) -> re.Pattern:
    """The row as a pattern: '...' stands for anything, N for a number."""
    parts = [re.escape(p) for p in row.split("...")]
    return re.compile(re.sub(r"(?<=\\ )N(?=\\ |;|,|$)", r"\\d+", ".*".join(parts)))


#: rows produced by a test elsewhere (what it takes: a real signal, process, download, package or divergence): the
#: test file and what it checks of the line
ELSEWHERE = {
    "MNIST is not in ... and downloading it failed": ("test_data.py", '"downloading it failed" in text'),
    "Fashion-MNIST is not in ...": ("test_data.py", '"apt-get install dataset-fashion-mnist" in text'),
    "logger=mlflow needs the mlflow package: pip install 'gan_cli[mlflow]'":
        ("test_trackers.py", "needs the wandb package: pip install 'gan_cli[wandb]'"),
    "logger=mlflow cannot open the store ...": ("test_trackers.py", '"logger=mlflow cannot open the store" in line'),
    "Cannot read Inception weights ...": ("test_extractors.py", 'match="Cannot read"'),
    "training diverged: loss/d became nan between steps ...": ("test_reliability.py", '"diverged", "loss/d", "between steps'),
    "distributed training failed: rank 1 (pid ...) was killed ...":
        ("test_dist.py", "gan-train: error: distributed training failed: rank 1 (pid {child}) was killed by SIGKILL"),
    "SIGINT received: stopped at step N, checkpoint ...": ("test_reliability.py", 'f"{sig.name} received" in line'),
}


def test_the_rows_made_elsewhere_are_checked_there():
    for row, (test, check) in ELSEWHERE.items():
        assert row in rows(), f"{row!r} is no longer on the page: drop it here"
        assert check in (ROOT / "tests" / test).read_text(), f"tests/{test} no longer checks {row!r}"


@pytest.fixture(scope="module")
def folder_of_images(tmp_path_factory) -> Path:
    from PIL import Image

    d = tmp_path_factory.mktemp("images")
    for i in range(4):
        Image.fromarray((torch.rand(16, 16, 3) * 255).byte().numpy()).save(d / f"{i}.png")
    return d


TINY = ["steps=2", "metrics=none", "image_every=0", "progress=false", "device=cpu"]
#: rows whose input is a finished run (made first, in the test's folder)
NEEDS_A_RUN = {"... already holds": [], "... is already at": [], "export=": ["data=digits"],
               "class 12": ["data=digits", "cond=concat"]}


def reproduce(row: str, tmp: Path, images: Path):
    """(tool, argv) giving the row's line, or None when the row is produced elsewhere."""
    tiny, done = TINY, tmp / "done"
    table = {
        "experiment=nope": ("gan-train", ["experiment=nope"]),
        "model.r1_gamma=10": ("gan-train", ["model.r1_gamma=10"]),
        "steps=0": ("gan-train", ["steps=0"]),
        "device=cuda": ("gan-train", ["device=cuda"]),
        "net=dcgan supports": ("gan-train", ["data=image_folder", f"data.path={images}", "data.image_size=12",
                                             "net=dcgan", *tiny[:2]]),
        "augment=diffaugment": ("gan-train", ["augment=diffaugment"]),
        "cond=concat needs": ("gan-train", ["data=image_folder", f"data.path={images}", "cond=concat"]),
        "cond=projection": ("gan-train", ["data=digits", "net=mlp", "cond=projection"]),
        "model.pack=2": ("gan-train", ["data=digits", "model.pack=2", "cond=concat"]),
        "logger.mlflow.tracking_uri": ("gan-train", ["logger=[mlflow]",
                                                     f"logger.mlflow.tracking_uri=sqlite:///{images / '0.png'}/m.db"]),
        "... already holds": ("gan-train", [*tiny, f"out_dir={done}"]),
        "... is already at": ("gan-train", [f"resume={done}", "steps=2"]),
        "metrics=images": ("gan-train", ["data=image_folder", f"data.path={images}", "metrics=images", *tiny[:1]]),
        "export=": ("gan-eval", [f"ckpt={done}", f"export={images}"]),
        "class 12": ("gan-eval", [f"ckpt={done}", f"export={tmp / 'x'}", "export.class=12"]),
    }
    for start, call in table.items():
        if row.startswith(start):
            return call
    return None


def test_every_row_is_reproduced_here_or_by_a_named_test(tmp_path, folder_of_images):
    assert len(rows()) >= 20
    for row in rows():
        if row in ELSEWHERE:
            continue
        assert reproduce(row, tmp_path / "probe", folder_of_images) is not None or row in ELSEWHERE, \
            f"docs/troubleshooting.md: no reproduction for {row!r}: add one here, or the test that makes it"


@pytest.mark.parametrize("row", [r for r in rows() if r not in ELSEWHERE])
def test_the_line_is_what_the_bad_input_prints(row, tmp_path, folder_of_images):
    if row.startswith("device=cuda") and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    for start, args in NEEDS_A_RUN.items():
        if row.startswith(start):
            r = run_cli("gan-train", [*TINY, *args, f"out_dir={tmp_path / 'done'}"], tmp_path)
            assert r.returncode == 0, r.stderr[-2000:]
    tool, argv = reproduce(row, tmp_path, folder_of_images)
    r = run_cli(tool, argv, tmp_path)
    lines = [ln for ln in r.stderr.splitlines() if ": error: " in ln]
    assert r.returncode == 2 and len(lines) == 1, (r.returncode, r.stderr[-2000:])
    assert pattern(row).search(lines[0]), f"the page shows {row!r}; {tool} prints {lines[0]!r}"
