"""`view` in a real browser: headless Chromium (WebGL in software) draws what this project writes.

Layers are written with the project's own task creators on a small volume of three spheres and a
tube. Each test opens some of them through igneous_like.viewer, loads the page in Chromium, takes
Neuroglancer's own screenshot (it waits until every visible chunk, mesh and skeleton is loaded),
and checks what a person would see: the selected object in its colour, the image's grey levels,
the segment properties listed; and in the server's log, the files fetched and no 4xx answer.
"""
import io
import os
import re
import shutil
import signal
import threading
import time

import numpy as np
import pytest
from conftest import free_port, run_cli, view_once

from igneous_like import viewer
from igneous_like.errors import UserError
from igneous_like.layers import write_array
from igneous_like.queues import run_locally
from igneous_like.task_creation import (
    create_measure_merge_tasks,
    create_measure_tasks,
    create_mesh_manifest_tasks,
    create_meshing_tasks,
    create_sharded_multires_mesh_tasks,
    create_sharded_skeleton_merge_tasks,
    create_skeletonizing_tasks,
    create_unsharded_skeleton_merge_tasks,
)
from igneous_like.task_creation.annotate import (
    clean_annotation_files,
    create_annotation_index_tasks,
    create_annotation_tasks,
)
from igneous_like.task_creation.measure import export_measurements

SHAPE, BLOCK = (96, 96, 48), (48, 48, 24)
SPHERES = {7: (30, 30, 20, 16), 300: (66, 60, 24, 20), 5000: (28, 72, 30, 12)}  # x, y, z, radius
TUBE = 900  # along x: a skeleton long enough to see
RED, BLUE = "#ff0000", "#0000ff"
CLASSES = {7: "neuron", 300: "glia", 5000: "neuron", TUBE: "axon"}
CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--window-size=800,600")


def volumes():
    """The segmentation (three spheres, z voxels 2.5x longer, and a tube) and its image."""
    x, y, z = np.ogrid[:SHAPE[0], :SHAPE[1], :SHAPE[2]]
    seg = np.zeros(SHAPE, np.uint32)
    for label, (cx, cy, cz, r) in SPHERES.items():
        seg[(x - cx) ** 2 + (y - cy) ** 2 + ((z - cz) * 2.5) ** 2 < r * r] = label
    seg[(8 <= x) & (x < 88) & ((y - 88) ** 2 + ((z - 10) * 2.5) ** 2 < 25)] = TUBE
    return np.where(seg > 0, 200, 40).astype(np.uint8), seg


def run(tasks):
    run_locally(tasks, 1, True, tasks.description)


@pytest.fixture(scope="module")
def layers(tmp_path_factory):
    """Gzip-compressed layers: an image; a segmentation with legacy meshes, unsharded skeletons
    and segment properties; one with multi-resolution meshes; one with sharded meshes and
    skeletons."""
    out = tmp_path_factory.mktemp("view")
    image, seg = volumes()
    write_array(f"file://{out}/image", image, "image", chunk=(32, 32, 16), compress="gzip")
    for name, merge in (("legacy", create_mesh_manifest_tasks),
                        ("multires", lambda path: create_mesh_manifest_tasks(path, nlod=1)),
                        ("sharded", lambda path: create_sharded_multires_mesh_tasks(path, nlod=1))):
        path = f"file://{out}/{name}"
        write_array(path, seg, "segmentation", chunk=(32, 32, 16), compress="gzip")
        run(create_meshing_tasks(path, shape=BLOCK))
        run(merge(path))
        if name != "multires":
            run(create_skeletonizing_tasks(path, shape=BLOCK, dust_threshold=0))
            run(create_sharded_skeleton_merge_tasks(path, dust_threshold=0) if name == "sharded"
                else create_unsharded_skeleton_merge_tasks(path, dust_threshold=0, tick_threshold=0))
    run(create_measure_tasks(f"file://{out}/legacy", shape=BLOCK))
    run(create_measure_merge_tasks(f"file://{out}/legacy"))
    export_measurements(f"file://{out}/legacy", str(out / "cells.csv"))
    write_points(out / "points")
    for name, sharded in (("objects", False), ("objects_sharded", True)):
        run(create_annotation_tasks(f"file://{out}/legacy", f"file://{out}/{name}", sharded=sharded,
                                    relate=[f"file://{out}/legacy"]))
        run(create_annotation_index_tasks(f"file://{out}/{name}"))
        clean_annotation_files(f"file://{out}/{name}")
    boxes = f"file://{out}/boxes"
    run(create_annotation_tasks(f"file://{out}/legacy", boxes, kind="axis_aligned_bounding_box"))
    run(create_annotation_index_tasks(boxes))
    return out


def write_points(path):
    """The spheres' centres as point annotations, written by neuroglancer's own writer."""
    import neuroglancer
    from neuroglancer.write_annotations import AnnotationWriter
    space = neuroglancer.CoordinateSpace(names=["x", "y", "z"], units="nm", scales=[16, 16, 40])
    writer = AnnotationWriter(space, "point")
    for cx, cy, cz, _ in SPHERES.values():
        writer.add_point([cx, cy, cz])
    writer.write(path)


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium and ChromeDriver, headless, driven by selenium."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: bash test.sh")
    missing = [tool for tool in ("chromium", "chromedriver") if shutil.which(tool) is None]
    if missing:
        why = (f"{' and '.join(missing)} not installed: bash test.sh installs Debian's chromium and "
               "chromium-driver where it runs as root with apt-get")
        pytest.fail(f"CI must run the browser tests; {why}") if os.environ.get("CI") else pytest.skip(why)
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def tagged(layers, tmp_path_factory):
    """The legacy segmentation, its objects named and tagged by class with `table properties`."""
    import pandas as pd
    out = tmp_path_factory.mktemp("tagged")
    shutil.copytree(layers / "legacy", out / "tagged")
    pd.DataFrame({"label": list(CLASSES), "name": [f"cell{label}" for label in CLASSES],
                  "prediction": list(CLASSES.values())}).to_csv(out / "classes.csv", index=False)
    run_cli("table", "properties", f"file://{out}/tagged", out / "classes.csv", "--label", "name",
            "--tags", "prediction")
    return out / "tagged"


def look(browser, paths, segments=(), subsources=None, layout="3d", **options):
    """Open `paths` in the browser with `segments` (if any) and annotations in red, in `layout`
    without slices or axis lines (`subsources` switches a segmentation's mesh, skeletons ... on
    or off; `options` go to viewer.show); returns the screenshot (rows, columns, RGB) and the
    server's log."""
    import neuroglancer
    ng_viewer, server, opened = viewer.show([str(path) for path in paths], segments=segments, **options)
    try:
        with ng_viewer.txn() as s:
            s.layout, s.show_slices, s.show_axis_lines = layout, False, False
            for layer in opened:
                if layer.kind == "annotation":
                    s.layers[layer.name].annotation_color = RED
                if layer.kind == "segmentation" and segments:
                    s.layers[layer.name].segment_colors = {segment: RED for segment in segments}
                    if subsources:
                        s.layers[layer.name].source = neuroglancer.LayerDataSource(
                            url=layer.source, subsources=subsources)
        browser.get(ng_viewer.get_viewer_url())
        return screenshot(ng_viewer), list(server.requests)
    finally:
        server.close()


def screenshot(ng_viewer, timeout=30) -> np.ndarray:
    """Neuroglancer's own screenshot, taken once every visible chunk has loaded and the page
    shows the state set here (a shot right after a change can show the one before)."""
    from PIL import Image
    deadline = time.monotonic() + timeout
    reply = settled_screenshot(ng_viewer, timeout)
    while reply.viewer_state.to_json() != ng_viewer.state.to_json() and time.monotonic() < deadline:
        reply = settled_screenshot(ng_viewer, deadline - time.monotonic())
    return np.asarray(Image.open(io.BytesIO(reply.screenshot.image)).convert("RGB")).astype(int)


def settled_screenshot(ng_viewer, timeout: float):
    done, replies = threading.Event(), []
    ng_viewer.async_screenshot(lambda reply: (replies.append(reply), done.set()))
    assert done.wait(timeout), "Neuroglancer did not settle in time"
    return replies[0]


def red_pixels(picture: np.ndarray, channel: int = 0) -> int:
    """Pixels of the selected segments' colour (pure red, or pure green or blue by `channel`),
    shaded darker or lighter by the lighting."""
    main, others = picture[..., channel], np.delete(picture, channel, axis=2)
    return int(((main > 60) & (others < main[..., None] / 4).all(axis=2)).sum())


def fetched(log, status=None):
    return [path for _, path, code, _ in log if status is None or code == status]


def no_client_errors(log):
    assert log, "the browser fetched nothing"
    assert not [entry for entry in log if 400 <= entry[2] < 500], log


def test_image_layer_shows_its_grey_levels(browser, layers):
    picture, log = look(browser, [layers / "image"], layout="xy")
    no_client_errors(log)
    assert any(path.startswith("/image/16_16_40/") for path in fetched(log, 200)), log
    grey = (picture[..., 0] == picture[..., 1]) & (picture[..., 1] == picture[..., 2])
    levels = np.bincount(picture[..., 0][grey], minlength=256)
    assert levels[200] > 1000 and levels[40] > 1000, "the spheres (200) and the background (40)"


@pytest.mark.parametrize("name, expected", [
    ("legacy", ["/legacy/mesh_mip_0_err_40/300:0", "/legacy/mesh_mip_0_err_40/300:0:1"]),
    ("multires", ["/multires/mesh_mip_0_err_40/300.index", "/multires/mesh_mip_0_err_40/300"]),
    ("sharded", ["/sharded/mesh_mip_0_err_40/0.shard"]),
])
def test_selected_mesh_is_drawn(browser, layers, name, expected):
    picture, log = look(browser, [layers / "image", layers / name], segments=[300])
    no_client_errors(log)
    assert set(expected) <= set(fetched(log)), log
    assert not [path for path in fetched(log) if re.search(r"/(7|900|5000)(:|\.index|$)", path)], log
    if name != "legacy":  # both fetch only pieces of one file, by byte range
        assert {code for _, path, code, _ in log if path == expected[-1]} == {206}, log
    assert red_pixels(picture) > 3000
    unselected, _ = look(browser, [layers / name], segments=[])
    assert red_pixels(unselected) == 0


@pytest.mark.parametrize("name, expected", [
    ("legacy", "/legacy/skeletons_mip_0/900"), ("sharded", "/sharded/skeletons_mip_0/0.shard")])
def test_selected_skeleton_is_drawn(browser, layers, name, expected):
    """Meshes switched off: what is red is the tube's skeleton, a line along x."""
    picture, log = look(browser, [layers / name], segments=[TUBE], subsources={"mesh": False})
    no_client_errors(log)
    assert expected in fetched(log), log
    assert not [path for path in fetched(log) if "/mesh_mip_0_err_40/" in path and "info" not in path]
    red = np.argwhere((picture[..., 0] > 60) & (picture[..., 1] < picture[..., 0] / 4))
    assert len(red) > 50
    extent = red.max(axis=0) - red.min(axis=0)
    assert extent[1] > 5 * max(extent[0], 1), f"a line along x, rows x columns {extent}"


def red_dots(picture: np.ndarray) -> int:
    from scipy import ndimage
    r, g = picture[..., 0], picture[..., 1]
    return ndimage.label((r > 60) & (g < r / 4))[1]


def test_annotation_points_are_drawn(browser, layers):
    """Points from neuroglancer's own writer: one red dot per sphere centre in the 3-D view."""
    picture, log = look(browser, [layers / "image", layers / "points"])
    no_client_errors(log)
    assert "/points/info" in fetched(log, 200)
    assert any(path.startswith("/points/spatial0/") for path in fetched(log, 200)), log
    assert red_dots(picture) == len(SPHERES)


@pytest.mark.parametrize("name, expected", [("objects", "/objects/spatial0/0_0_0"),
                                            ("objects_sharded", "/objects_sharded/spatial0/0.shard")])
def test_annotations_written_here_are_drawn(browser, layers, name, expected):
    """`annotate points` of the segmentation, unsharded and sharded: one red dot per object
    (the three spheres and the tube) at its centroid."""
    picture, log = look(browser, [layers / "image", layers / name])
    no_client_errors(log)
    assert f"/{name}/info" in fetched(log, 200)
    assert expected in fetched(log), log
    assert red_dots(picture) == len(SPHERES) + 1


def test_annotation_boxes_written_here_are_drawn(browser, layers):
    """`annotate boxes` of the segmentation in the xy view at the volume's middle (z 24): the
    outlines of the two bounding boxes that reach it (spheres 7 and 300, from the volume here)
    drawn in red where they belong, and nothing else red."""
    from scipy import ndimage
    picture, log = look(browser, [layers / "boxes"], layout="xy")
    no_client_errors(log)
    assert "/boxes/info" in fetched(log, 200) and "/boxes/spatial0/0_0_0" in fetched(log, 200), log
    r, g = picture[..., 0], picture[..., 1]
    red = (r > 60) & (g < r / 4)
    _, seg = volumes()
    boxes = [(where.min(axis=0)[:2], where.max(axis=0)[:2] + 1)
             for where in (np.argwhere(seg == label) for label in (7, 300))]
    low, high = np.min([b[0] for b in boxes], axis=0), np.max([b[1] for b in boxes], axis=0)
    rows, columns = np.nonzero(red)
    scale = np.array([columns.max() - columns.min(), rows.max() - rows.min()]) / (high - low)
    assert abs(scale[0] - scale[1]) < 0.05 * scale[0], scale  # x and y both 16 nm
    expected = np.zeros_like(red)
    for box_low, box_high in boxes:  # the four edges, in screen pixels
        corners = [np.array([columns.min(), rows.min()]) + (np.array(c) - low) * scale
                   for c in ((box_low[0], box_low[1]), (box_high[0], box_low[1]),
                             (box_high[0], box_high[1]), (box_low[0], box_high[1]))]
        for start, end in zip(corners, corners[1:] + corners[:1]):
            along = start + np.linspace(0, 1, 200)[:, None] * (end - start)
            expected[np.rint(along[:, 1]).astype(int), np.rint(along[:, 0]).astype(int)] = True
    near = lambda mask: ndimage.binary_dilation(mask, iterations=2)  # noqa: E731
    assert expected.sum() > 200 and not (expected & ~near(red)).any(), "an edge is missing"
    assert not (red & ~near(expected)).any(), "red where no box edge is"


def segment_tab(browser, layer, until, query=None):
    """LAYER's segment tab in the browser (searched for QUERY), once its text shows UNTIL: the
    page's words, the listed rows (id, label) and the server's log."""
    from selenium.webdriver.support.ui import WebDriverWait
    name = layer.name
    ng_viewer, server, _ = viewer.show([str(layer)])
    try:
        with ng_viewer.txn() as s:
            s.selected_layer.layer, s.selected_layer.visible = name, True
            s.layers[name].tab = "segments"
            s.layers[name].segment_query = query
        browser.get(ng_viewer.get_viewer_url())
        page = lambda: browser.find_element("tag name", "body").text  # noqa: E731
        WebDriverWait(browser, 30).until(lambda _: until in page())
        rows = browser.execute_script(
            "return [...document.querySelectorAll('.neuroglancer-segment-list-entry')].map(row => "
            "['id', 'name'].map(part => row.querySelector('.neuroglancer-segment-list-entry-' + part))"
            ".map(element => element ? element.textContent : null))")
        words = page().split()
    finally:
        server.close()
    no_client_errors(server.requests)
    assert f"/{name}/segment_properties/info" in fetched(server.requests, 200)
    return words, rows


def test_segment_properties_are_listed(browser, layers):
    """The layer's segment tab lists every object and counts the numeric properties that
    `measure export` wrote (read here from the file itself)."""
    from cloudfiles import CloudFiles
    properties = CloudFiles(f"file://{layers}/legacy/segment_properties").get_json("info")["inline"]
    numeric = [p for p in properties["properties"] if p["type"] in ("number", "float32", "int32")]
    shown, _ = segment_tab(browser, layers / "legacy", f"{len(numeric)} numerical properties")
    ids = [str(label) for label in np.unique(volumes()[1]) if label]
    assert len(numeric) > 3 and properties["ids"] == ids
    assert all(label in shown for label in ids), shown


def test_segments_are_found_by_tag(browser, tagged):
    """`table properties` names and tags the objects by class: Neuroglancer's segment list,
    searched for #neuron, lists exactly the neurons, each with its name."""
    _, rows = segment_tab(browser, tagged, "2 match /4 total ids", "#neuron")
    listed = sorted(row for row in rows if row[0].isdigit())  # the first row is the list's header
    assert listed == [["5000", "cell5000 #neuron"], ["7", "cell7 #neuron"]], rows


def test_objects_are_drawn_in_their_tag_colours(browser, tagged):
    """--colors neuron=red,GLIA=blue --select-tagged: the two neurons' meshes drawn red, the glia's
    blue (tags matched ignoring case); the untagged-by-colour axon neither selected nor fetched."""
    picture, log = look(browser, [tagged], colors={"neuron": RED, "GLIA": BLUE}, select_tagged=True)
    no_client_errors(log)
    meshes = {path.rsplit("/", 1)[1].split(":")[0] for path in fetched(log, 200)
              if "/mesh_mip_0_err_40/" in path}
    assert meshes == {"info", "7", "300", "5000"}, log
    assert red_pixels(picture) > 3000 and red_pixels(picture, 2) > 2000
    assert red_pixels(picture, 1) == 0


def test_tag_colours_in_the_layer_state(tagged):
    """Neuroglancer's segment colour map and selection as asked: every tag its palette colour,
    nothing selected; or only the named tags' objects, selected."""
    from igneous_like.segment_properties import PALETTE
    by_class = {"axon": PALETTE[0], "glia": PALETTE[1], "neuron": PALETTE[2]}  # the tags' sorted order
    for options, colours, selected in (
            (dict(every_tag=True), {label: by_class[name] for label, name in CLASSES.items()}, set()),
            (dict(colors={"Neuron": RED}, select_tagged=True), {7: RED, 5000: RED}, {7, 5000})):
        ng_viewer, server, _ = viewer.show([str(tagged)], segments=[300], **options)
        server.close()
        state = ng_viewer.state.to_json()["layers"][0]
        assert state["segmentColors"] == {str(k): v for k, v in colours.items()}
        assert set(map(int, state["segments"])) == selected | {300}


def test_remote_layers_go_to_neuroglancer_as_urls(aws_endpoint, tmp_path, monkeypatch, layers):
    """An s3:// layer is typed from its info, read with the user's credentials, and passed on
    as a URL; a local one is served."""
    import boto3
    import requests
    from conftest import aws_env
    for key, value in aws_env(aws_endpoint, tmp_path).items():
        monkeypatch.setenv(key, value)
    requests.post(f"{aws_endpoint}/moto-api/reset")
    s3 = boto3.client("s3", endpoint_url=aws_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="lab")
    s3.put_object(Bucket="lab", Key="em/seg/info", Body=(layers / "legacy/info").read_bytes())
    opened = viewer.open_layers(["s3://lab/em/seg/", str(layers / "image")], "http://127.0.0.1:9")
    local = viewer.Layer("image", "image", "precomputed://http://127.0.0.1:9/image", layers / "image")
    assert opened == [viewer.Layer("seg", "segmentation", "precomputed://s3://lab/em/seg", None), local]
    with pytest.raises(UserError, match="not a Precomputed layer"):
        viewer.open_layers(["s3://lab/em/nothing"], "http://127.0.0.1:9")


def get(url, headers=None):
    """(status, headers, body) of a GET that keeps the body as sent, gzip and all."""
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {})) as reply:
            return reply.status, reply.headers, reply.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def test_server_answers_as_neuroglancer_needs(layers):
    """NAME from NAME.gz with gzip encoding; byte ranges of the uncompressed bytes (206, 416);
    CORS on every answer; nothing outside a layer's directory; every request logged."""
    import gzip
    root = layers / "legacy"
    server = viewer.LayerServer({"legacy": root})
    base = f"http://127.0.0.1:{server.server_address[1]}/legacy"
    try:
        chunk = "16_16_40/32-64_32-64_16-32"
        raw = (root / (chunk + ".gz")).read_bytes()
        status, headers, body = get(f"{base}/{chunk}")
        assert (status, headers["Content-Encoding"], body) == (200, "gzip", raw)
        assert headers["Access-Control-Allow-Origin"] == "*"
        status, headers, body = get(f"{base}/{chunk}", {"Range": "bytes=10-19"})
        assert (status, body) == (206, gzip.decompress(raw)[10:20])
        assert headers["Content-Range"] == f"bytes 10-19/{len(gzip.decompress(raw))}"
        shard = (layers / "sharded/skeletons_mip_0/0.shard").read_bytes()
        server.roots["sharded"] = layers / "sharded"
        shard_url = base.replace("/legacy", "/sharded/skeletons_mip_0/0.shard")
        assert get(shard_url, {"Range": "bytes=-8"})[::2] == (206, shard[-8:])
        assert get(shard_url, {"Range": "bytes=3-9"})[::2] == (206, shard[3:10])
        assert get(shard_url, {"Range": f"bytes={len(shard)}-"})[0] == 416
        assert get(f"{base}/../image/info")[0] == 404  # urllib keeps the ..
        assert get(f"{base}/%2e%2e/image/info")[0] == 404
        assert get(f"{base}/nothing")[0] == 404
    finally:
        server.close()
    assert [entry[2] for entry in server.requests] == [200, 206, 206, 206, 416, 404, 404, 404]


def test_view_command_serves_until_interrupted(layers):
    """The real command: the URL on stdout opens Neuroglancer's client, each layer is served
    with its type, and Ctrl-C stops it with exit code 0."""
    port = free_port()
    url, status, code, err = view_once(layers / "image", f"file://{layers}/legacy", "--segments", "300",
                                       "--port", port)
    assert url.startswith(f"http://127.0.0.1:{port}/v/") and status == 200
    assert code == 0 and err.strip().endswith("stopped"), err
    sources = dict(re.findall(r"(image|segmentation) +\w+: precomputed://(\S+)", err))
    assert set(sources) == {"image", "segmentation"} and sources["segmentation"].endswith("/legacy")
    with pytest.raises(OSError):  # the layers' server stopped with the command
        get(sources['image'] + "/info")


@pytest.mark.parametrize("stop, ignored", [(signal.SIGINT, (signal.SIGINT,)), (signal.SIGTERM, ())])
def test_view_stops_on_ctrl_c_where_its_parent_ignored_it_and_on_kill(layers, stop, ignored):
    """A parent that ignores SIGINT (a script's background job, a test runner) passes that on to
    its children; `view` still stops on Ctrl-C (it hung until killed), and on a plain kill."""
    url, status, code, err = view_once(layers / "image", stop=stop, ignored=ignored)
    assert status == 200 and code == 0 and err.strip().endswith("stopped"), err


@pytest.mark.parametrize("path, message", [
    ("{tmp}/nowhere", "nowhere does not exist"),
    ("{layers}/legacy/mesh_mip_0_err_40", "is not an image, segmentation or annotation layer"),
    ("{tmp}", "is not a Precomputed layer"),
])
def test_view_bad_input(layers, tmp_path, path, message):
    result = run_cli("view", path.format(tmp=tmp_path, layers=layers), "--no-browser", check=False)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("args, message", [
    (["{tagged}", "--colors", "astrocyte=red"], "no segmentation has tag astrocyte; the tags are axon, glia"),
    (["{tagged}", "--colors", "neuron=nocolour"], "--colors wants TAG=COLOR pairs"),
    (["{layers}/legacy", "{layers}/image", "--color-by-tag"], "no segmentation among the layers has tags"),
    (["{tagged}", "--select-tagged"], "give --colors or --color-by-tag"),
])
def test_view_colour_by_tag_bad_input(layers, tagged, args, message):
    result = run_cli("view", *[arg.format(tagged=tagged, layers=layers) for arg in args], "--no-browser",
                     check=False)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
