"""The `igneous-like` command: global options, the areas' groups, and the error edge.

User mistakes (UserError, click usage errors, and file system, credential or network errors a
user can fix) end as one line on stderr with exit code 2;
failed tasks end with exit code 1 after each failure was logged with its traceback.
"""
import logging
import sys

import click

from igneous_like import __version__, settings
from igneous_like.cli.lazy import LazyGroup
from igneous_like.cli.params import numberify  # noqa: F401  (Igneous's igneous_cli.numberify)
from igneous_like.errors import TaskFailures, UserError, WorkerFailures, outside_problem

AREAS = {
    "image": "igneous_like.cli.image:image",
    "mesh": "igneous_like.cli.mesh:mesh",
    "skeleton": "igneous_like.cli.skeleton:skeleton",
    "measure": "igneous_like.cli.measure:measure",
    "annotate": "igneous_like.cli.annotate:annotate",
    "postprocess": "igneous_like.cli.postprocess:postprocess",
    "table": "igneous_like.cli.table:table",
    "agglomerate": "igneous_like.cli.agglomerate:agglomerate",
    "evaluate": "igneous_like.cli.agglomerate:evaluate",
    "execute": "igneous_like.cli.execution:execute",
    "queue": "igneous_like.cli.execution:queue",
    "pipeline": "igneous_like.cli.pipeline:pipeline",
    "demo": "igneous_like.cli.demo:demo",
    "design": "igneous_like.cli.design:design",
    "view": "igneous_like.cli.view:view",
    "license": "igneous_like.cli.license:show_license",
}


@click.group(cls=LazyGroup, lazy=AREAS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-p", "--parallel", type=click.IntRange(min=1), default=1, show_default=True,
              envvar="IGNEOUS_LIKE_PARALLEL",
              help="Worker processes for execute and for tasks run without --queue.")
@click.option("--quiet", is_flag=True, help="No progress bars or progress lines.")
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
@click.version_option(__version__)
@click.pass_context
def cli(ctx, parallel, quiet, verbose):
    """Chunked, queue-driven processing of Neuroglancer Precomputed volumes.

    Enqueue work with a verb and --queue, then run workers with execute; without --queue the
    tasks run right here.

    Example:

      igneous-like image downsample file:///data/em --queue fq:///tmp/q

      igneous-like -p 2 execute -x fq:///tmp/q
    """
    level = logging.DEBUG if verbose else (logging.WARNING if quiet else logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    for chatty in ("botocore", "boto3", "urllib3", "s3transfer"):  # per-request INFO lines
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))
    settings.check()
    ctx.obj = {**(ctx.obj or {}), "parallel": parallel, "quiet": quiet}  # keeps a pipeline's "plan"


def main(argv=None) -> None:
    try:
        code = cli.main(args=argv, prog_name="igneous-like", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("igneous-like: aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        click.echo(f"igneous-like: error: {err.format_message()}", err=True)
        sys.exit(2)
    except UserError as err:
        click.echo(f"igneous-like: error: {err}", err=True)
        sys.exit(2)
    except TaskFailures as err:
        click.echo(f"igneous-like: {err}", err=True)
        sys.exit(2 if err.user_errors else 1)
    except WorkerFailures as err:
        click.echo(f"igneous-like: {err}", err=True)
        sys.exit(1)
    except Exception as err:
        problem = outside_problem(err)
        if problem is None:
            raise  # a bug: keep its traceback
        logging.getLogger(__name__).debug("details", exc_info=err)  # shown with -v
        click.echo(f"igneous-like: error: {problem}", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
