"""Every CLI verb, found by walking the command tree (so new verbs are covered as they land), meets
a path with nothing there: one clear line on stderr, exit code 2, no traceback, nothing written."""
import click
import pytest
from conftest import run_cli

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
    missing = [f"file://{tmp_path}/nothing-{i}" for i in range(len(arguments))]
    extra = ["--yes"] if any(param.name == "yes" for param in command.params) else []
    result = run_cli(*verb, *missing, *extra, check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr
    assert lines[0].startswith("igneous-like: error:"), result.stderr
    assert list(tmp_path.iterdir()) == []
