"""Commands and paths the tool prints, written so that a shell accepts them as printed."""
from __future__ import annotations

import shlex
from pathlib import Path


def shell_path(path) -> str:
    """``path`` as a shell word: unchanged when it is safe, single-quoted otherwise (spaces ...)."""
    return shlex.quote(str(path))


def resume_command(run_dir) -> str:
    return f"gan-train resume={shell_path(Path(run_dir))}"
