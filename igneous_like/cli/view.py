"""`igneous-like view`: look at layers in Neuroglancer, served from this machine."""
import signal
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
@click.option("--color-by-tag", is_flag=True,
              help="Colour each segmentation's objects by their tags (segment properties), a colour per tag.")
@click.option("--colors", default="", metavar="TAG=COLOR,...",
              help="Colours of named tags, e.g. neuron=red,glia=#00ff00 (only these, unless --color-by-tag).")
@click.option("--select-tagged", is_flag=True, help="Also select (show) every object that got a tag colour.")
@click.option("--no-browser", is_flag=True, help="Only print the URL; do not open a browser.")
def view(paths, bind, port, segments, color_by_tag, colors, select_tagged, no_browser):
    """Open layers in Neuroglancer: local layers (paths or file://) are served from here, s3://,
    gs:// and http(s):// ones are read by Neuroglancer itself. A segmentation comes with its
    meshes, skeletons and segment properties; its objects can be coloured by their tags (an object
    with several takes the first of --colors it has, else its first in the tag list). Serves
    until Ctrl-C.

    Example: igneous-like view demo_output/image demo_output/cells --segments 5

    Example: igneous-like view file:///data/cells --colors neuron=red,glia=blue --select-tagged
    """
    from igneous_like import viewer
    tag_colors = viewer.parse_colors(colors)
    neuroglancer_viewer, server, layers = viewer.show(paths, bind, port, segments, tag_colors, color_by_tag,
                                                      select_tagged)
    url = neuroglancer_viewer.get_viewer_url()
    # Ctrl-C (and a plain kill) stop it even where the parent ignored or blocked SIGINT, which its
    # children inherit (a script's background job, a test runner): Python then sets no Ctrl-C handler
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    try:  # from here on Ctrl-C stops the servers: the URL is out, and a client may be quick
        for layer in layers:
            click.echo(f"  {layer.kind:13} {layer.name}: {layer.source}", err=True)
        click.echo(url)
        if not no_browser:
            webbrowser.open(url)
        threading.Event().wait()
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    finally:
        server.close()
