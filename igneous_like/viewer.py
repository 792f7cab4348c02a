"""Look at layers in Neuroglancer: a small HTTP server for local layers and the bundled client.

Neuroglancer reads Precomputed over HTTP, while this project writes to disk as CloudFiles does:
compressed files as `NAME.gz`, shards read by byte range. `LayerServer` serves each local layer's
directory the way Neuroglancer asks for it (`NAME` from `NAME.gz` with Content-Encoding: gzip,
206 for ranges, CORS, since the client comes from another port) and keeps a log of every request.
Remote layers (s3://, gs://, http(s)://) go to Neuroglancer as URLs it reads itself.
"""
import collections
import gzip
import http.server
import json
import re
import socket
import sys
import threading
import urllib.parse
from pathlib import Path
from typing import List, NamedTuple, Optional, Sequence, Tuple

from igneous_like.errors import UserError

REMOTE = ("s3://", "gs://", "http://", "https://")
RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class Layer(NamedTuple):
    name: str
    kind: str  # image, segmentation or annotation
    source: str  # the URL Neuroglancer reads, with its precomputed:// prefix
    root: Optional[Path]  # the directory served, None for a remote layer


def layer_kind(info: dict, path: str) -> str:
    """image, segmentation or annotation, from a Precomputed info file."""
    if info.get("@type") == "neuroglancer_annotations_v1":
        return "annotation"
    if info.get("type") in ("image", "segmentation"):
        return info["type"]
    raise UserError(f"{path} is not an image, segmentation or annotation layer: its info has "
                    f"type {info.get('type', info.get('@type'))!r}")


def read_info(path: str) -> dict:
    """The info of a local or remote layer; a UserError where there is none."""
    if path.startswith(REMOTE):
        from cloudfiles import CloudFiles
        info = CloudFiles(path).get_json("info")
    else:
        root = local_root(path)
        if not root.exists():
            raise UserError(f"{path} does not exist: give a layer's directory, e.g. demo_output/image")
        info = None
        if (root / "info").is_file():
            info = json.loads((root / "info").read_bytes())
        elif (root / "info.gz").is_file():
            info = json.loads(gzip.decompress((root / "info.gz").read_bytes()))
    if not isinstance(info, dict):
        raise UserError(f"{path} is not a Precomputed layer (no info file there): give the layer's "
                        "directory, e.g. file://$PWD/demo_output/image")
    return info


def local_root(path: str) -> Path:
    return Path(path[len("file://"):] if path.startswith("file://") else path).expanduser().resolve()


def open_layers(paths: Sequence[str], base_url: str) -> List[Layer]:
    """Each path as a Layer named after its last part (made unique), local ones under base_url."""
    layers, names = [], set()
    for path in paths:
        kind = layer_kind(read_info(path), path)
        name = stem = path.rstrip("/").rsplit("/", 1)[-1] or "layer"
        count = 1
        while name in names:
            count += 1
            name = f"{stem}_{count}"
        names.add(name)
        if path.startswith(REMOTE):
            layers.append(Layer(name, kind, f"precomputed://{path.rstrip('/')}", None))
        else:
            url = f"{base_url}/{urllib.parse.quote(name)}"
            layers.append(Layer(name, kind, f"precomputed://{url}", local_root(path)))
    return layers


class LayerHandler(http.server.BaseHTTPRequestHandler):
    """GET and HEAD of files under the server's roots, as Neuroglancer asks for them."""
    protocol_version = "HTTP/1.1"

    def do_OPTIONS(self):  # the CORS preflight of a ranged request
        self.reply(204, b"", {})

    def do_HEAD(self):
        self.do_GET(body=False)

    def do_GET(self, body=True):
        found = self.server.find(urllib.parse.unquote(urllib.parse.urlsplit(self.path).path))
        if found is None:
            return self.reply(404, b"not found\n", {"Content-Type": "text/plain"}, body)
        zipped, wanted = found.suffix == ".gz", RANGE.match(self.headers.get("Range", "").strip())
        if not wanted:
            return self.reply(200, found.read_bytes(), {"Content-Encoding": "gzip"} if zipped else {}, body)
        data, start, size = byte_range(found, wanted)
        if data is None:
            return self.reply(416, b"", {"Content-Range": f"bytes */{size}"}, body)
        headers = {"Content-Range": f"bytes {start}-{start + len(data) - 1}/{size}"}
        self.reply(206, data, headers, body)

    def reply(self, status: int, data: bytes, headers: dict, body: bool = True):
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(data)), "Accept-Ranges": "bytes",
                           "Access-Control-Allow-Origin": "*",
                           "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
                           "Access-Control-Allow-Headers": "Range",
                           "Access-Control-Expose-Headers": "Content-Range, Content-Length"}.items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(data)
        self.server.log(self.command, self.path, status, self.headers.get("Range"))

    def log_message(self, *args):
        pass  # the server keeps its own log


def byte_range(path: Path, match: re.Match) -> Tuple[Optional[bytes], int, int]:
    """(the bytes of a `bytes=a-b`, `bytes=a-` or `bytes=-n` range, its first byte, the size),
    with None for bytes where the range starts past the end. The range is of what Neuroglancer
    sees: a `.gz` file's uncompressed bytes; other files are read from `a` on, not whole."""
    content = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else None
    size = path.stat().st_size if content is None else len(content)
    first, last = match.groups()
    if first:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    else:
        start, end = max(0, size - int(last or 0)), size - 1
    if start >= size or start > end:
        return None, start, size
    if content is not None:
        return content[start:end + 1], start, size
    with path.open("rb") as file:
        file.seek(start)
        return file.read(end - start + 1), start, size


class LayerServer(http.server.ThreadingHTTPServer):
    """Serves /NAME/... from the directory of layer NAME; `requests` is every request answered,
    as (method, path, status, range header)."""
    daemon_threads = True

    def __init__(self, roots: dict, bind: str = "127.0.0.1", port: int = 0):
        super().__init__((bind, port), LayerHandler)
        self.roots, self.lock = dict(roots), threading.Lock()
        self.requests = collections.deque(maxlen=100_000)  # a long session keeps the latest
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def find(self, url_path: str) -> Optional[Path]:
        """The file for a URL path: the named file, else its `.gz`; None outside every layer."""
        name, _, rest = url_path.lstrip("/").partition("/")
        root = self.roots.get(name)
        if root is None or not rest:
            return None
        for candidate in (root / rest, root / (rest + ".gz")):
            resolved = candidate.resolve()
            if resolved.is_file() and resolved.is_relative_to(root):
                return resolved
        return None

    def log(self, method: str, path: str, status: int, byte_range: Optional[str]) -> None:
        with self.lock:
            self.requests.append((method, path, status, byte_range))

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a browser that left mid-request
            super().handle_error(request, client_address)

    def close(self) -> None:
        self.shutdown()
        self.server_close()


def public_host(bind: str) -> str:
    """The host name a browser reaches a server bound to `bind` at."""
    return socket.getfqdn() if bind in ("0.0.0.0", "::", "") else bind


def show(paths: Sequence[str], bind: str = "127.0.0.1", port: int = 0, segments: Sequence[int] = (),
         colors: Optional[dict] = None, every_tag: bool = False, select_tagged: bool = False):
    """Serve `paths` and open them in a Neuroglancer viewer: (viewer, LayerServer, layers).
    The viewer listens on `port` (any free one for 0), the layers' server on any free port.
    `colors` (tag -> colour), `every_tag` and `select_tagged`: see `tagged_segments`."""
    if select_tagged and not (colors or every_tag):
        raise UserError("--select-tagged selects the objects that get a tag colour: give --colors or "
                        "--color-by-tag")
    server = LayerServer({}, bind)
    try:
        layers = open_layers(paths, f"http://{public_host(bind)}:{server.server_address[1]}")
        server.roots.update({layer.name: layer.root for layer in layers if layer.root})
        tinted = tagged_segments(paths, layers, colors or {}, every_tag) if colors or every_tag else {}
        import neuroglancer  # after the checks: it takes a second to import
        neuroglancer.set_server_bind_address(bind, port)
        viewer = neuroglancer.Viewer()
        with viewer.txn() as state:
            for layer in layers:
                colours = tinted.get(layer.name, {})
                state.layers[layer.name] = viewer_layer(neuroglancer, layer, segments, colours, select_tagged)
    except BaseException:
        server.close()
        raise
    return viewer, server, layers


def tagged_segments(paths: Sequence[str], layers: Sequence[Layer], colors: dict, every_tag: bool) -> dict:
    """{layer name: {segment id: colour}} of each segmentation's objects by the tags in its segment
    properties (igneous_like.segment_properties.tag_colors); a UserError where no segmentation has
    tags, or a tag of `colors` is in none of them."""
    from igneous_like.segment_properties import layer_tags, tag_colors
    found, tinted = set(), {}
    for path, layer in zip(paths, layers):
        if layer.kind != "segmentation":
            continue
        directory = read_info(path).get("segment_properties")
        properties = read_info(f"{path.rstrip('/')}/{directory}") if directory else None
        found.update(tag.lower() for tag in layer_tags(properties))
        tinted[layer.name] = tag_colors(properties, colors, every_tag)
    if not found:
        raise UserError("no segmentation among the layers has tags in its segment properties: add them "
                        "with `igneous-like table properties SEG TABLE --tags COLUMN`")
    unknown = [tag for tag in colors if tag.lower() not in found]
    if unknown:
        raise UserError(f"no segmentation has tag {', '.join(unknown)}; the tags are "
                        f"{', '.join(sorted(found))}")
    return tinted


def parse_colors(text: str) -> dict:
    """TAG=COLOR,... (a colour name or #rrggbb, as matplotlib reads them) as {tag: '#rrggbb'}."""
    from matplotlib.colors import to_hex
    out = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        tag, _, color = item.partition("=")
        try:
            out[tag.strip().lstrip("#")] = to_hex(color.strip())
        except ValueError:
            raise UserError(f"--colors wants TAG=COLOR pairs such as neuron=red,glia=#00ff00; "
                            f"{item!r} has no colour") from None
    return out


def viewer_layer(neuroglancer, layer: Layer, segments: Sequence[int], colors: dict, select_tagged: bool):
    """The Neuroglancer layer for one of ours: its meshes, skeletons and segment properties
    come along, since the client finds them from the segmentation's info; `colors` is its
    segment colour map, whose segments are selected too with `select_tagged`."""
    if layer.kind == "image":
        return neuroglancer.ImageLayer(source=layer.source)
    if layer.kind == "segmentation":
        chosen = [int(s) for s in segments]
        chosen += [s for s in colors if select_tagged and s not in chosen]
        return neuroglancer.SegmentationLayer(source=layer.source, segments=chosen, segment_colors=colors)
    return neuroglancer.AnnotationLayer(source=layer.source)
