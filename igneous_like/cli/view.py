"""`igneous-like view`: look at layers in Neuroglancer, served from this machine."""
import threading
import webbrowser

import click

from igneous_like.cli.params import INT_LIST


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--bind", default="127.0.0.1", show_default=True,
              help="Address both servers listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=0,
              help="The viewer's port (default: any free one); layers are served on another free port.")
@click.option("--segments", type=INT_LIST, default="", help="Segment ids to select, e.g. 12,407.")
@click.option("--no-browser", is_flag=True, help="Only print the URL; do not open a browser.")
def view(paths, bind, port, segments, no_browser):
    """Open layers in Neuroglancer: local layers (paths or file://) are served from here, s3://,
    gs:// and http(s):// ones are read by Neuroglancer itself. A segmentation comes with its
    meshes, skeletons and segment properties. Serves until Ctrl-C.

    Example: igneous-like view demo_output/image demo_output/cells --segments 5
    """
    from igneous_like import viewer
    neuroglancer_viewer, server, layers = viewer.show(paths, bind, port, segments)
    url = neuroglancer_viewer.get_viewer_url()
    for layer in layers:
        click.echo(f"  {layer.kind:13} {layer.name}: {layer.source}", err=True)
    click.echo(url)
    if not no_browser:
        webbrowser.open(url)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    finally:
        server.close()
