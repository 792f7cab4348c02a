"""A click group that imports a subcommand's module only when the subcommand is asked for."""
import importlib
from typing import Dict, List, Optional

import click


class LazyGroup(click.Group):
    """Subcommands named in `lazy` as "module:attribute" load on first use, so a command starts
    without importing every area's libraries (cloud storage alone costs half a second)."""

    def __init__(self, *args, lazy: Optional[Dict[str, str]] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> List[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> Optional[click.Command]:
        if name in self.lazy and name not in self.commands:
            module, attribute = self.lazy[name].split(":")
            self.add_command(getattr(importlib.import_module(module), attribute), name)
        return super().get_command(ctx, name)
