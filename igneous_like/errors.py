"""One exception hierarchy for mistakes a user can fix.

The CLI turns a UserError into one line on stderr and exit code 2; everything else is a bug
or an infrastructure failure and keeps its traceback; errors of the file system, credentials and
network that a user can fix also end as one line (outside_problem).
"""
import errno
import sys


class UserError(ValueError):
    """Input that cannot work: the message says what is wrong and how to fix it."""


class LayerNotFoundError(UserError):
    """The path does not hold a Precomputed layer (no readable info file)."""


class MissingChunkError(UserError):
    """A task read a chunk that does not exist, without --fill-missing."""


class TaskFailures(RuntimeError):
    """One or more tasks failed; each was reported when it failed. `user_errors`: every failure
    was a mistake in the input (say, a missing chunk), so the command exits 2, not 1."""

    def __init__(self, failed: int, total: int, how: str = "failed", user_errors: bool = False):
        super().__init__(f"{failed} of {total} tasks {how} (errors above)")
        self.failed = failed
        self.total = total
        self.user_errors = user_errors


class WorkerFailures(RuntimeError):
    """Worker processes ended with an error outside any task; each was reported."""


OS_ADVICE = {
    errno.EACCES: "permission denied: check its permissions or choose another path",
    errno.EPERM: "operation not permitted: check its permissions or choose another path",
    errno.ENOTDIR: "a part of this path is a file, not a directory: check the path",
    errno.EISDIR: "this is a directory where a file is needed: check the path",
    errno.ENOSPC: "no space left on the device: free some or write elsewhere",
    errno.EDQUOT: "disk quota exceeded: free some space or write elsewhere",
    errno.EROFS: "the file system is read-only: write elsewhere",
    errno.ENAMETOOLONG: "the name is too long: choose a shorter path",
}
AWS_KEYS = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or write ~/.cloudvolume/secrets/aws-secret.json"
UNREACHABLE = "cannot reach AWS: check the network and AWS_ENDPOINT_URL"
OUTSIDE = (  # (module, exception class, what to fix); a module not yet imported raised nothing
    ("botocore.exceptions", "NoCredentialsError", f"no AWS credentials: {AWS_KEYS}"),
    ("botocore.exceptions", "PartialCredentialsError", f"incomplete AWS credentials: {AWS_KEYS}"),
    ("botocore.exceptions", "EndpointConnectionError", UNREACHABLE),
    ("botocore.exceptions", "ConnectTimeoutError", UNREACHABLE),
    ("google.auth.exceptions", "DefaultCredentialsError",
     "no Google Cloud credentials: write ~/.cloudvolume/secrets/google-secret.json"),
    ("requests.exceptions", "ConnectionError", "cannot connect: check the network and the URL"),
    ("builtins", "ConnectionError", "cannot connect: check the network and the URL"),
)
AWS_REFUSALS = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId",
                "ExpiredToken", "UnrecognizedClientException", "AuthFailure"}


def outside_problem(err: BaseException):
    """One line naming what to fix when `err` comes from outside the program (the file system,
    credentials, the network), else None: any other error is a bug and keeps its traceback."""
    if isinstance(err, OSError) and err.errno in OS_ADVICE:
        advice = OS_ADVICE[err.errno]
        return f"{err.filename}: {advice}" if err.filename else advice
    for module, name, advice in OUTSIDE:
        kind = getattr(sys.modules.get(module), name, None)
        if kind is not None and isinstance(err, kind):
            return f"{advice} ({err})"
    if getattr(err, "response", None) and isinstance(err.response, dict) and \
            err.response.get("Error", {}).get("Code") in AWS_REFUSALS:  # botocore's ClientError
        return f"AWS refused the request: check the credentials and their permissions ({err})"
    return None
