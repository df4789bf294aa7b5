"""Shared options are spelled the same in every command's ``--help``; old spellings still work."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from tumorseg.cli import app
from tumorseg.cli.common import HIDDEN_ALIASES, _rewrite

runner = CliRunner()
WIDE = {"COLUMNS": "400"}  # no help line wrapped: each option's names sit on one line


# Typer ships its own copy of Click, so commands and options are told apart by what they have.
def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every leaf command of the app, with the words that call it."""
    if not hasattr(command, "commands"):
        return [(path, command)]
    found = []
    for name, sub in sorted(command.commands.items()):
        found.extend(_commands(sub, (*path, name)))
    return found


COMMANDS = _commands(typer.main.get_command(app))


def _options(command: Any) -> list[Any]:
    """The options ``--help`` shows (not arguments, not --help itself)."""
    return [
        p
        for p in command.params
        if p.param_type_name == "option" and not p.hidden and "--help" not in p.opts
    ]


def _long(option: Any) -> str:
    """The option's long name, singular: ``--trainers`` (several values) counts as ``--trainer``."""
    name = next(o for o in option.opts if o.startswith("--"))
    many = option.multiple or option.nargs != 1
    return name[:-1] if many and name.endswith("s") else name


def _shorts(option: Any) -> frozenset[str]:
    return frozenset(o for o in option.opts if not o.startswith("--"))


def test_each_flag_is_spelled_one_way_across_the_app() -> None:
    by_short: dict[str, set[str]] = defaultdict(set)
    by_long: dict[str, set[frozenset[str]]] = defaultdict(set)
    where: dict[str, list[str]] = defaultdict(list)
    for path, command in COMMANDS:
        for option in _options(command):
            long = _long(option)
            by_long[long].add(_shorts(option))
            where[long].append(" ".join(path))
            for short in _shorts(option):
                by_short[short].add(long)
    # A short flag always stands for one option ...
    assert {s: ls for s, ls in by_short.items() if len(ls) > 1} == {}
    # ... and an option has the same short flags in every command that takes it.
    assert {lg: ss for lg, ss in by_long.items() if len(ss) > 1} == {}
    # The shared options, by name (their commands: the app as it is, so a new command counts).
    assert by_short["-tr"] == {"--trainer"}
    assert by_short["-np"] == {"--num-processes"}
    assert by_short["-f"] == {"--fold"}
    assert by_long["--plans"] == {frozenset()}
    assert {"train", "slurm", "predict", "export-model", "find-best", "demo"} <= set(
        where["--trainer"]
    )
    assert {"plan", "preprocess", "train", "predict", "export-model"} <= set(where["--plans"])
    assert {"predict", "export-model", "slurm"} <= set(where["--fold"])
    for root in ("--raw", "--preprocessed", "--results"):
        assert by_long[root] == {frozenset()}


def test_the_help_of_every_command_lists_the_shared_spellings() -> None:
    shared = {"--trainer": "-tr", "--num-processes": "-np", "--folds": "-f"}
    for path, command in COMMANDS:
        output = runner.invoke(app, [*path, "--help"], env=WIDE).output
        for long, short in shared.items():
            lines = [line for line in output.splitlines() if f" {long} " in line]
            if any(long in o.opts for o in _options(command)):
                assert len(lines) == 1, (path, long, output)
                assert f" {short} " in lines[0], (path, lines[0])
        for old in ("--plans-name", "--num-workers", "--num-threads -np", " -t "):
            assert old not in output, (path, old)


def test_minus_np_counts_processes_everywhere() -> None:
    for path, command in COMMANDS:
        for option in _options(command):
            if "-np" in option.opts:
                assert "process" in (option.help or ""), (path, option.help)
                assert "thread" not in (option.help or ""), (path, option.help)
            if any("thread" in o for o in option.opts):
                assert "-np" not in option.opts, path


def test_hidden_aliases_become_the_current_names() -> None:
    names = {"--trainer", "-tr", "--plans", "--num-processes", "-np"}
    args = ["-t", "msf", "--plans-name=small", "--num-workers", "0", "--", "-t"]
    assert _rewrite(args, names) == [
        "--trainer", "msf", "--plans=small", "--num-processes", "0", "--", "-t",
    ]  # fmt: skip
    # A command that has an option of the alias's own name keeps it; one without the target
    # option leaves it for Click to reject.
    assert _rewrite(["-t", "x"], {"-t", "--trainer"}) == ["-t", "x"]
    assert _rewrite(["--plans-name", "x"], {"--trainer"}) == ["--plans-name", "x"]
    # The plural spelling of a repeatable option takes the alias too.
    assert _rewrite(["-t", "msf"], {"--trainers", "-tr"}) == ["--trainers", "msf"]
    assert set(HIDDEN_ALIASES.values()) <= {"--trainer", "--plans", "--num-processes"}


def test_old_trainer_spelling_still_works_through_the_cli(tmp_path: Path) -> None:
    script = tmp_path / "train.sh"
    args = ["slurm", "1", "3d_fullres", "-t", "msf", "-f", "0,2", "-o", str(script)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2 array tasks" in result.output
    text = script.read_text()
    assert "msf" in text
    unknown = runner.invoke(app, ["slurm", "1", "3d_fullres", "-t", "nosuch", "-o", str(script)])
    assert "nosuch" in str(unknown.exception)


@pytest.mark.parametrize(
    ("command", "option"),
    [
        (["synth", "--id", "1"], "-np"),
        (["train", "1", "3d_fullres", "0"], "--num-workers"),
    ],
)
def test_process_counts_below_their_minimum_are_rejected(command: list[str], option: str) -> None:
    result = runner.invoke(app, [*command, option, "-1"])
    assert result.exit_code == 2
    assert "--num-processes" in result.output
