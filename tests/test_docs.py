"""The manual cannot drift: the configuration reference is the schema's, every link resolves, the README stays a
front page, and every gan-train command shown composes (each key it names exists)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from conftest import load_file_module

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md")) + [ROOT / "README.md"]


def _hook():
    return load_file_module(DOCS / "hooks" / "config_reference.py")


def test_the_configuration_reference_is_generated_from_the_schema():
    """docs/reference/configuration.md is what the build's hook writes: a key added, renamed or removed in the
    schema or conf/ without `make docs` fails here."""
    page = _hook().page()
    assert (DOCS / "reference" / "configuration.md").read_text() == page, "run `make docs` and commit the page"
    for key in ("`steps`", "`model.opt_g.lr`", "`cond=projection`", "`logger.mlflow.tracking_uri`", "`data.base`",
                "`augment.target`", "`reg.r1.gamma`"):
        assert key in page, key


def test_the_readme_is_a_front_page():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


_LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    text = page.read_text()
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    for target in _LINK.findall(text):
        if re.match(r"^[a-z]+://", target) or target.startswith("#") or target.startswith("mailto:"):
            continue
        path = target.split("#", 1)[0]
        assert (page.parent / path).exists(), f"{page.relative_to(ROOT)}: {target}"


def _commands(tool: str = "gan-train"):
    """(page, argv) of every ``tool`` command shown; placeholders (<run folder>, $PWD ...) are dropped with
    the arguments that hold them (the keys of the rest must exist); in code blocks and inline (`gan-train data=digits`)."""
    out = []
    for page in PAGES:
        text = page.read_text()
        prose = re.sub(r"```.*?```", "", text, flags=re.S)
        inline = re.findall(rf"(?<!`)`((?:\.venv/bin/)?{tool}(?: [^`]*)?)`(?!`)", prose)  # `gan-train data=digits`
        for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", text, flags=re.S) + inline:
            for line in block.splitlines():
                line = line.split(" #", 1)[0].strip()
                m = re.match(rf"^(?:PYTHONPATH=\S+ )?(?:\.venv/bin/)?{tool}(?:\s|$)(.*)$", line)
                if not m:
                    continue
                try:
                    argv = shlex.split(m.group(1))
                except ValueError:
                    continue
                if any(a.startswith("hydra.searchpath") for a in argv):
                    continue  # a plugin's own configs (docs/extending.md): tests/test_plugin.py runs that command
                # placeholders and syntax (<run>, $PWD, ..., [optional], a|b choices) are not arguments
                argv = [a for a in argv if not re.search(r"<|>|\$|\.\.\.|\||^\[|=$|=[A-Z]$", a)]  # S, N: a value to choose
                if tool == "gan-train" and len(argv) < len(shlex.split(m.group(1))):
                    continue  # a gan-train line with a placeholder: its keys may depend on it (resume=<run>)
                out.append((page.relative_to(ROOT), argv))
    return out


COMMANDS = _commands()
EVAL_COMMANDS = _commands("gan-eval")


def _first(value: str) -> str:
    """The first value of a sweep (``a,b,c`` -> ``a``; lists ``[a,b]`` stay)."""
    return value if value.startswith("[") else value.split(",")[0]


def test_the_docs_show_gan_train_commands():
    assert len(COMMANDS) >= 30


@pytest.mark.parametrize("page,argv", COMMANDS, ids=[f"{p}:{' '.join(a)[:60]}" for p, a in COMMANDS])
def test_every_gan_train_command_in_the_docs_composes(page, argv):
    """Each key a shown command names exists: the command composes as gan-train composes it (a sweep's first value
    of each swept key; Hydra's own options and the launcher aside)."""
    from conftest import compose_train

    from gan_cli.cli.precheck import check_argv

    args = [a for a in argv if a not in ("-m", "--multirun") and "=" in a and not a.startswith(("hydra", "hydra/"))]
    check_argv(args)  # a missing option or a moved key: its one line
    compose_train(*[f"{k}={_first(v)}" for k, v in (a.split("=", 1) for a in args)])


def test_the_docs_show_gan_eval_commands():
    assert len(EVAL_COMMANDS) >= 10


@pytest.mark.parametrize("page,argv", EVAL_COMMANDS, ids=[f"{p}:{' '.join(a)[:60]}" for p, a in EVAL_COMMANDS])
def test_every_gan_eval_command_in_the_docs_composes(page, argv):
    """The keys of every gan-eval command shown exist in gan-eval's config (its short spellings as gan-eval reads
    them: export=<dir>, export.class=K)."""
    from hydra import compose, initialize_config_module

    from gan_cli.cli.evaluate import eval_argv
    from gan_cli.cli.precheck import check_argv

    args = [a for a in eval_argv(argv) if "=" in a and not a.startswith(("hydra", "-"))]
    check_argv(args)
    with initialize_config_module(config_module="gan_cli.conf", version_base="1.3"):
        compose("eval", overrides=[f"{k}={_first(v)}" for k, v in (a.split("=", 1) for a in args)])


def _known_keys() -> set:
    """Every dotted key gan-train or gan-eval accepts: the reference's (the schema's and every option's) and gan-eval's
    own (with its short spelling export.class)."""
    from omegaconf import OmegaConf

    from gan_cli.config import EvalConfig

    reference = (DOCS / "reference" / "configuration.md").read_text()
    keys = set(re.findall(r"^\| `([a-z_][\w.]*)` \|", reference, flags=re.M))

    def walk(node, prefix=""):
        for k, v in node.items():
            keys.add(prefix + k)
            if OmegaConf.is_dict(v):
                walk(v, prefix + k + ".")
    walk(OmegaConf.structured(EvalConfig))
    for f in (ROOT / "examples" / "plugin" / "conf").glob("*/*.yaml"):  # the plugin's own (docs/extending.md)
        group = f"{f.parent.name}.{f.stem}" if f.parent.name in ("reg", "logger") else f.parent.name
        walk(OmegaConf.load(f), group + ".")
        keys.add(group)
    return keys | {"export.class"}


#: file names, not keys (metrics.jsonl, truncation.csv ...)
FILES = r"\.(jsonl?|csv|png|md|pt|ya?ml|npz|db|py|txt)$"


def _moved() -> set:
    """The earlier spellings gan-train names the new one for (the manual lists them with their fix)."""
    from gan_cli.config import MOVED

    return set(MOVED)


_SPAN = re.compile(r"(?<!`)`([a-z_]+(?:\.[a-z0-9_]+)+)(?:=[^`]*)?`(?!`)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_config_key_the_prose_names_exists(page):
    """An inline `key` or `key=value` whose first part is a config key or group (model., data., metrics. ...) names a
    key gan-train or gan-eval has: a renamed key cannot linger in the manual."""
    known, moved = _known_keys(), _moved()
    roots = {k.split(".", 1)[0] for k in known}
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    names = [k for k in _SPAN.findall(text) if k.split(".", 1)[0] in roots and not re.search(FILES, k)]
    bad = [k for k in names if k not in known and not any(n.startswith(k + ".") for n in known)
           and k not in moved]
    assert not bad, f"{page.relative_to(ROOT)} names keys that do not exist: {sorted(set(bad))}"
