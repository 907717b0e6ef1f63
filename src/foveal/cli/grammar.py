"""``foveal [TASK] MODE ...``: one command grammar for every task (docs/architecture.md, "One
command grammar").

Example:
    >>> route(["train", "--task", "detect", "--epochs", "3"])
    ['detect', 'train', '--epochs', '3']
    >>> route(["classify", "models"])
    ['models']
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from foveal.errors import ConfigError

GLOBAL_FLAGS = ("-v", "--verbose")
ANY_TASK_MODES = ("export", "benchmark", "serve", "inspect", "prune")


def route(argv: Sequence[str], *, quiet: bool = False) -> list[str]:
    """``argv`` in the parser's shape (``quiet``: import TensorFlow silently before a card is read);
    raises ConfigError on a task mismatch."""
    from foveal.tasks import MODEL_MODES, TASKS

    argv = list(argv)
    head = 0
    while head < len(argv) and argv[head] in GLOBAL_FLAGS:
        head += 1
    if head >= len(argv):
        return argv
    flags, word, rest = argv[:head], argv[head], argv[head + 1:]
    if word == "train":
        return flags + _train_task(rest)
    named = None
    if word in TASKS and rest and not rest[0].startswith("-"):
        mode = rest[0]
        if word == "classify" or mode in ANY_TASK_MODES:
            named, word, rest = word, mode, rest[1:]
        elif mode in MODEL_MODES:
            _check_model(word, mode, rest[1:], quiet)
            return argv
        else:
            return argv
    if word in MODEL_MODES:
        task = _check_model(named, word, rest, quiet)
        if task is not None and task != "classify" and word in ("evaluate", "predict"):
            return flags + [task, word, *rest]
    if named == "classify" and word == "train":
        return flags + _train_task(rest)
    return flags + [word, *rest]


def _train_task(rest: list[str]) -> list[str]:
    """``train --task X ARGS`` (or ``--task=X``) -> ``X train ARGS``; only before a ``--``."""
    from foveal.tasks import TASKS

    for i, arg in enumerate(rest):
        if arg == "--":
            break
        task = None
        if arg == "--task" and i + 1 < len(rest):
            task, drop = rest[i + 1], 2
        elif arg.startswith("--task="):
            task, drop = arg.split("=", 1)[1], 1
        if task is None:
            continue
        others = rest[:i] + rest[i + drop:]
        if task == "classify":
            return ["train", *others]
        if task in TASKS:
            return [task, "train", *others]
        return ["train", *rest]  # argparse refuses the unknown task with the choices
    return ["train", *rest]


def _model_file(args: list[str]) -> Path | None:
    """The first argument that is an existing ``.keras`` file (the mode's model)."""
    for arg in args:
        if arg == "--":
            break
        if arg.endswith(".keras") and Path(arg).is_file():
            return Path(arg)
    return None


def _check_model(named: str | None, mode: str, args: list[str], quiet: bool = False) -> str | None:
    """The task of the mode's model file (None without one), checked against ``named`` and ``mode``."""
    from foveal.tasks import TASKS, check_mode, model_task

    path = _model_file(args)
    if path is None:
        return None
    if quiet:
        from foveal.cli.quiet import import_tensorflow_quietly

        import_tensorflow_quietly()
    task, has_card = model_task(path)
    if named is not None and named != "classify" and not has_card:
        raise ConfigError(f"{path} has no foveal model card (a plain Keras model, used as a classifier)",
                          hint=f"use `foveal {mode} {path}` for a classifier, or a model trained by "
                               f"`foveal {named} train`")
    if named is not None and task.name != named:
        raise ConfigError(f"{path} is {task.a_model}, not a {TASKS[named].title} model",
                          hint=f"use `{task.command(mode)} {path} ...`")
    check_mode(task, mode, path)
    return task.name
