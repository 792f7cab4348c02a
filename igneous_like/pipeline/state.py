"""A pipeline's progress, kept in storage so that workers on any machine can advance it and
`pipeline run` can resume it after any crash.

Layout under the state URL (file:// or s3://):

    pipeline.json                 the steps: names, command lines, dependencies, first stages
    STEP/K/stage.json             stage K of STEP as it was created: its call, task count, next stages
    STEP/K/claim                  who creates stage K (written once: exactly one process does)
    STEP/K/enqueued               stage K's tasks are all on the queue
    STEP/K/done/B/I               task I is done (B = I // BLOCK)
    STEP/K/blocks/B               every task of block B is done
    STEP/K/complete               every task of stage K is done
    STEP/done                     the step's last stage is complete

Done markers are grouped in blocks so that noticing the end of a stage costs each task one
listing of at most BLOCK names, however many tasks the stage has. The claim is the one write that
must happen exactly once: an exclusive create (O_EXCL on file://, If-None-Match on S3).
"""
import os
from typing import List, Optional
from urllib.parse import urlparse

from cloudfiles import CloudFiles

from igneous_like.errors import UserError

BLOCK = 1000
PROTOCOLS = ("file", "s3")


def check_state_url(url: str) -> str:
    """A state URL every worker can claim in: file:// (a local or shared disk) or s3://."""
    if "://" not in url:
        url = "file://" + os.path.abspath(url)
    if url.split("://", 1)[0] not in PROTOCOLS:
        raise UserError(f"pipeline state {url} must be on file:// or s3:// (where one write can be made "
                        "exclusive); choose another --state or state: location")
    return url.rstrip("/")


class State:
    """Reads and writes one pipeline's progress under `url`."""

    def __init__(self, url: str):
        self.url = check_state_url(url)
        self.files = CloudFiles(self.url, progress=False)

    # plain records
    def get_json(self, name: str) -> Optional[dict]:
        return self.files.get_json(name)

    def put_json(self, name: str, value) -> None:
        self.files.put_json(name, value, cache_control="no-cache")

    def mark(self, name: str) -> None:
        self.files.put(name, b"", compress=None, cache_control="no-cache")

    def exists(self, name: str) -> bool:
        return self.files.exists(name)

    def names(self, prefix: str) -> List[str]:
        """The names of files and folders directly under `prefix/` (without it)."""
        start = prefix.rstrip("/") + "/"
        try:
            return [name[len(start):].rstrip("/") for name in self.files.list(prefix=start, flat=True)]
        except FileNotFoundError:  # a local folder not made yet
            return []

    # one writer
    def claim(self, name: str, owner: str) -> bool:
        """Whether `owner` holds `name`: it creates the claim if nobody has, exactly once however
        many processes try at the same instant; a later call by the same owner (its retry) holds it too."""
        if self.create_once(name, owner.encode()):
            return True
        return (self.files.get(name) or b"").decode() == owner

    def create_once(self, name: str, content: bytes) -> bool:
        parsed = urlparse(self.url)
        if parsed.scheme == "file":
            path = os.path.join(parsed.netloc + parsed.path, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            try:
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                return False
            with open(descriptor, "wb") as file:
                file.write(content)
            return True
        return s3_create_once(parsed.netloc, f"{parsed.path.strip('/')}/{name}", content)


def s3_create_once(bucket: str, key: str, content: bytes) -> bool:
    """PutObject with If-None-Match: * (S3 refuses it with 412 once the key exists)."""
    from botocore.exceptions import ClientError
    from cloudfiles.connectionpools import S3ConnectionPool
    pool = S3ConnectionPool("s3", bucket)
    client = pool.get_connection()
    try:
        client.put_object(Bucket=bucket, Key=key, Body=content, IfNoneMatch="*")
        return True
    except ClientError as err:
        if err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (409, 412):
            return False
        raise
    finally:
        pool.release_connection(client)


def stage_path(step: str, stage: int) -> str:
    return f"{step}/{stage}"


def done_marker(step: str, stage: int, index: int) -> str:
    return f"{stage_path(step, stage)}/done/{index // BLOCK}/{index}"

