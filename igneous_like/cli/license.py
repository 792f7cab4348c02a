"""`igneous-like license`: the license igneous_like declares (Igneous prints its GPL with `igneous
license`); read from the package's metadata, which setup.py writes, so it cannot drift from it."""
from importlib import metadata

import click

UNDECLARED = ("igneous_like declares no license: the repository has no LICENSE file and setup.py names "
              "no license; ask its authors before redistributing it.")


def declared_license() -> str:
    """The License-Expression or License field of the installed distribution, or the note that there
    is none (also when igneous_like runs from a checkout that was never installed)."""
    try:
        meta = metadata.metadata("igneous_like")
    except metadata.PackageNotFoundError:
        return UNDECLARED
    declared = meta.get("License-Expression") or meta.get("License")
    return declared.strip() if declared and declared.strip() not in ("", "UNKNOWN") else UNDECLARED


@click.command("license")
def show_license():
    """Print the license of this library and command-line tool."""
    click.echo(declared_license())
