"""MkDocs hook: ``reference/configuration.md`` generated from the config schema at every build, so the reference
cannot drift from the code.  Every run-level key of ``gan-train`` (``gan_cli.config.TrainConfig`` and its nested
schemas) and every option of every config group (``conf/<group>/<option>.yaml``) with each key's type (the schema
dataclass's annotation), default (the composed value) and meaning (the comment beside it in the YAML, else in the
schema).  Also callable as a script: ``python docs/hooks/config_reference.py`` prints the page.
"""
from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
#: group -> what it picks (the page's one line per group)
GROUPS = {
    "model": "the objective (loss) and its optimisers",
    "net": "the generator / discriminator architecture",
    "data": "the data set",
    "reg": "regularisers, composed as a list: reg=[r1,instance_noise]",
    "augment": "the augment pipe on D's inputs",
    "cond": "class conditioning",
    "logger": "trackers, several at once: logger=[tensorboard,mlflow]",
    "metrics": "the metric suite",
    "experiment": "presets (a whole recipe)",
    "hparams_search": "Optuna studies (gan-train -m hparams_search=<name>)",
}
_FIELD = re.compile(r"^\s+(\w+)\s*:\s*[^=#]+?(?:=\s*.+?)?\s*#\s*(.+)$")
_BARE = re.compile(r"^\s+(\w+)\s*:\s*[^=#]+?(?:=\s*.+?)?\s*$")
_YAML = re.compile(r"^(\w+):\s*(.*?)\s+#\s*(.+)$")


def field_comments(cls) -> dict:
    out: dict = {}
    for c in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(c):
            continue
        try:
            src = inspect.getsource(c)
        except (OSError, TypeError):
            continue
        above: list = []  # comment lines right above a field: its meaning when it has none on its line
        for line in src.splitlines():
            m = _FIELD.match(line)
            if m:
                out[m.group(1)] = m.group(2).strip()
                above = []
                continue
            f = _BARE.match(line)
            if f and above and f.group(1) not in out:
                out[f.group(1)] = " ".join(above)
            stripped = line.strip()
            above = above + [stripped.lstrip("# ").strip()] if stripped.startswith("#") else []
    return out


def yaml_comments(path: Path) -> dict:
    out = {}
    for line in path.read_text().splitlines():
        m = _YAML.match(line)
        if m:
            out[m.group(1)] = m.group(3).strip()
    return out


def yaml_title(path: Path) -> str:
    """The YAML's first comment line (its one-line description)."""
    for line in path.read_text().splitlines():
        if line.startswith("# @package"):
            continue
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def type_name(tp) -> str:
    if isinstance(tp, str):
        return tp
    name = getattr(tp, "__name__", None) or str(tp)
    args = typing.get_args(tp)
    if typing.get_origin(tp) is typing.Union and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return f"{type_name(inner[0])} or null" if len(inner) == 1 else str(tp)
    return "any" if name == "Any" else name.replace("typing.", "")


def cell(v) -> str:
    v = getattr(v, "value", v)  # an enum: its value, as written on the command line
    text = "null" if v is None else str(v).replace("|", "\\|")
    return f"`{text}`" if text else "`''`"


def schema_class(group: str, option_yaml: Path):
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    m = re.search(rf"/schema/{group}/(\w+)@_here_", option_yaml.read_text())
    if not m:
        return None
    repo = ConfigStore.instance().repo["schema"][group]
    node = repo.get(f"{m.group(1)}.yaml")
    return OmegaConf.get_type(node.node) if node is not None else None


def rows_of(cls, values: dict, comments: dict, prefix: str = "") -> list:
    rows = []
    fields = {f.name: f for f in dataclasses.fields(cls)} if cls is not None and dataclasses.is_dataclass(cls) else {}
    own = field_comments(cls) if fields else {}
    hints = typing.get_type_hints(cls) if fields else {}
    for key, value in values.items():
        if key.startswith("_"):
            continue
        sub = fields.get(key)
        sub_cls = hints.get(key) if sub is not None else None
        if isinstance(value, dict) and value and dataclasses.is_dataclass(sub_cls):
            rows += rows_of(sub_cls, value, {}, f"{prefix}{key}.")
            continue
        tp = type_name(hints[key]) if key in hints else type(value).__name__ if value is not None else "any"
        rows.append((f"{prefix}{key}", tp, value, comments.get(key) or own.get(key, "")))
    return rows


def table(rows) -> list:
    out = ["| key | type | default | meaning |", "|---|---|---|---|"]
    out += [f"| `{k}` | {t} | {cell(v)} | {m.replace('|', '/')} |" for k, t, v, m in rows]
    return out


def page() -> str:
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from gan_cli.config import TrainConfig, register_configs

    register_configs()
    GlobalHydra.instance().clear()
    out = ["# Configuration reference", "",
           "Generated from the config schema (`gan_cli/config.py`, each component's schema dataclass) and the YAML files "
           "of `conf/` at every build of this manual: what is here is what `gan-train` accepts. Override any key on the "
           "command line (`gan-train steps=5000 model.opt_g.lr=1e-4`); pick a group's option with `group=option`.", ""]
    with initialize_config_module("gan_cli.conf", version_base="1.3"):
        base = OmegaConf.to_container(compose("train"), resolve=False)
        out += ["## Run-level keys", ""]
        top = {k: v for k, v in base.items() if k not in GROUPS and k != "hydra"}
        out += table(rows_of(TrainConfig, top, yaml_comments(CONF / "train.yaml"))) + [""]
        for group, what in GROUPS.items():
            folder = CONF / group
            options = sorted(p for p in folder.glob("*.yaml"))
            out += [f"## `{group}=`: {what}", "", "| option | what it is |", "|---|---|"]
            out += [f"| `{group}={p.stem}` | {yaml_title(p).replace('|', '/')} |" for p in options]
            out.append("")
            if group in ("experiment", "hparams_search"):
                continue
            for p in options:
                try:
                    cfg = compose("train", overrides=[f"{group}=[{p.stem}]" if group in ("reg", "logger") else f"{group}={p.stem}"])
                except Exception as e:  # a group option that does not compose alone: say so
                    out += [f"### `{group}={p.stem}`", "", f"(composes only with other options: {str(e).splitlines()[0]})", ""]
                    continue
                node = OmegaConf.to_container(cfg[group], resolve=False)
                if group in ("reg", "logger"):
                    node = node.get(p.stem, {})
                cls = schema_class(group, p)
                keys = f"{group}.{p.stem}." if group in ("reg", "logger") else f"{group}."
                out += [f"### `{group}={p.stem}`", ""]
                rows = rows_of(cls, node, yaml_comments(p), keys)
                out += (table(rows) if rows else ["(no keys)"]) + [""]
    GlobalHydra.instance().clear()
    return "\n".join(out) + "\n"


def on_pre_build(config, **kwargs) -> None:
    target = Path(config["docs_dir"]) / "reference" / "configuration.md"
    text = page()
    if not target.exists() or target.read_text() != text:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


if __name__ == "__main__":
    print(page(), end="")
