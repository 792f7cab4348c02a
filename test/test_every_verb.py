"""Every CLI verb, found by walking the command tree (so new verbs are covered as they land), meets
a path with nothing there: one clear line on stderr, exit code 2, no traceback, nothing written."""
import re

import click
import pytest
from conftest import REPO, run_cli

from igneous_like.cli import cli


def leaves(group: click.Group, prefix=()):
    context = click.Context(group)
    for name in group.list_commands(context):  # loads lazily registered areas too
        command = group.get_command(context, name)
        if isinstance(command, click.Group):
            yield from leaves(command, prefix + (name,))
        else:
            yield prefix + (name,), command


VERBS = [(path, command) for path, command in leaves(cli) if path != ("demo",)]  # demo makes its folder


@pytest.mark.parametrize("verb,command", VERBS, ids=[" ".join(path) for path, _ in VERBS])
def test_missing_input_is_one_line_and_exit_2(tmp_path, verb, command):
    arguments = [param for param in command.params if isinstance(param, click.Argument)]
    missing = [f"file://{tmp_path}/nothing-{i}" for i in range(max(len(arguments), 1))]  # 1: one too many
    extra = ["--yes"] if any(param.name == "yes" for param in command.params) else []
    result = run_cli(*verb, *missing, *extra, check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr
    assert lines[0].startswith("igneous-like: error:"), result.stderr
    assert list(tmp_path.iterdir()) == []


def readme_verb_table():
    """(Igneous verb, igneous_like verb or None, mark) per row of the README's table of Igneous's verbs."""
    section = (REPO / "README.md").read_text().split("## Igneous's verbs", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        match = re.fullmatch(r"\| `igneous ([a-z -]+)` \| (?:`igneous-like ([a-z -]+)`)? ?(.*) \|", line)
        if match:
            rows.append(match.groups())
    return rows


def test_readme_verb_table_names_real_verbs():
    """The README's table of Igneous's verbs beside ours cannot go stale: every igneous_like verb it
    names is a command of the CLI, and a row without one says so."""
    rows = readme_verb_table()
    assert len(rows) >= 40
    ours = {" ".join(path) for path, _ in VERBS}
    for igneous, counterpart, mark in rows:
        assert counterpart or mark == "not yet", igneous
        if counterpart:
            assert counterpart in ours, f"README names `igneous-like {counterpart}`, which the CLI lacks"


def test_license_says_what_the_repository_declares():
    """Igneous's `license` verb: igneous_like has no LICENSE file and setup.py names no license, so
    the verb says that none is declared rather than print someone else's."""
    assert not list(REPO.glob("LICENSE*")) and "license" not in (REPO / "setup.py").read_text().lower()
    result = run_cli("license")
    assert result.returncode == 0 and result.stdout.count("\n") == 1
    assert "declares no license" in result.stdout and "LICENSE" in result.stdout
