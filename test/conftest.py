"""Shared fixtures: the real segmentation, an image made from it, layer writing, CLI runs."""
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cloudvolume import CloudVolume

from igneous_like.layers import write_array as write_layer

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "connectomics.npy.ckl.gz"


@pytest.fixture(scope="session")
def real_seg() -> np.ndarray:
    """The real 512^3 uint32 EM segmentation (Fortran order)."""
    if not DATA.exists():
        pytest.skip(f"real data not found at {DATA}")
    import crackle
    return np.asfortranarray(crackle.load(str(DATA)))


@pytest.fixture(scope="session")
def real_image(real_seg) -> np.ndarray:
    """A uint8 'EM-like' image made from the segmentation: a per-object grey level, dark borders."""
    grey = ((real_seg.astype(np.uint64) * np.uint64(2654435761)) >> np.uint64(24)) % np.uint64(200)
    image = (grey + 40).astype(np.uint8)
    borders = np.zeros(real_seg.shape, dtype=bool)
    borders[1:] |= real_seg[1:] != real_seg[:-1]
    borders[:, 1:] |= real_seg[:, 1:] != real_seg[:, :-1]
    image[borders] = 10
    return np.asfortranarray(image)


@pytest.fixture
def make_layer(tmp_path):
    """make_layer(name, data, layer_type, **kwargs) -> file:// path under this test's tmp_path."""
    def make(name, data, layer_type, **kwargs):
        return write_layer(f"file://{tmp_path / name}", data, layer_type, **kwargs)
    return make


def read_mip(path: str, mip: int) -> np.ndarray:
    """A whole mip as an (x,y,z) array, through CloudVolume."""
    cv = CloudVolume(path, mip=mip, progress=False)
    return np.asarray(cv[cv.bounds])[..., 0]


def tensorstore_read(path: str, mip: int) -> np.ndarray:
    """A whole mip through TensorStore, an implementation independent of CloudVolume."""
    ts = pytest.importorskip("tensorstore")
    spec = {"driver": "neuroglancer_precomputed", "kvstore": path + "/", "scale_index": mip}
    return ts.open(spec).result().read().result()[..., 0]


def run_cli(*args, check=True, env=None, cwd=None, timeout=None) -> subprocess.CompletedProcess:
    """Run `python -m igneous_like ARGS` as a real subprocess (killed after `timeout` seconds)."""
    full_env = dict(os.environ, **(env or {}))
    result = subprocess.run([sys.executable, "-m", "igneous_like", *map(str, args)],
                            capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"igneous-like {' '.join(map(str, args))} exited {result.returncode}:\n"
                             f"{result.stderr}")
    return result


def view_once(*args, stop=signal.SIGINT, ignored=()) -> tuple:
    """Run `igneous-like view ARGS --no-browser` for real (with the `ignored` signals ignored, as a
    parent can leave them): the URL it prints and the status of a GET of it, then `stop` (Ctrl-C's
    SIGINT): its exit code and stderr."""
    import urllib.request
    command = [sys.executable, "-m", "igneous_like", "view", *map(str, args), "--no-browser"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: [signal.signal(s, signal.SIG_IGN) for s in ignored])
    try:
        url = process.stdout.readline().strip()
        with urllib.request.urlopen(url, timeout=30) as reply:
            status = reply.status
        process.send_signal(stop)
        _, err = process.communicate(timeout=120)  # a deadline, not a timing: generous for loaded machines
    finally:
        process.kill()
    return url, status, process.returncode, err


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def aws_endpoint() -> str:
    """A real S3- and SQS-compatible server (moto) on loopback for the whole session."""
    server_module = pytest.importorskip("moto.server")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=free_port())
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def aws_env(endpoint: str, home) -> dict:
    """The environment that points every AWS client at `endpoint`, with a HOME of no secrets."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1", "HOME": str(home)}


@pytest.fixture
def sqs_env(aws_endpoint, tmp_path):
    """The AWS server wiped, with one queue, igneous-like-test, and the environment that points at it."""
    env = aws_env(aws_endpoint, tmp_path)
    import boto3
    import requests
    requests.post(f"{aws_endpoint}/moto-api/reset")
    boto3.client("sqs", endpoint_url=aws_endpoint, region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing").create_queue(
        QueueName="igneous-like-test")
    return env


class FlakyProxy:
    """An HTTP proxy in front of the AWS server that answers a share of requests with 503
    (what S3 and SQS say when overloaded), to show that every request is retried."""

    def __init__(self, target: str, failure_rate: float, seed: int = 0):
        import http.server
        import random
        import threading
        import urllib.parse

        import requests

        upstream = urllib.parse.urlsplit(target)
        rng, lock, proxy = random.Random(seed), threading.Lock(), self
        self.failed = self.passed = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                with lock:
                    fail = rng.random() < failure_rate
                    proxy.failed += fail
                    proxy.passed += not fail
                if fail:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                reply = requests.request(self.command, f"{upstream.scheme}://{upstream.netloc}{self.path}",
                                         headers=headers, data=body, allow_redirects=False, stream=True)
                content = reply.raw.read(decode_content=False)  # bytes as sent, gzip and all
                self.send_response(reply.status_code)
                for key, value in reply.headers.items():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                length = reply.headers.get("Content-Length") if self.command == "HEAD" else len(content)
                self.send_header("Content-Length", str(length or 0))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
