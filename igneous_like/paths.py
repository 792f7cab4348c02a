"""The one rule for names joined onto a layer's path.

A layer's info names places inside it (`mesh`, `skeletons`, `segment_properties`, each scale's
`key`) and verbs take more (`mesh --dir`). Joined onto the layer's path as they come, `..` or
an absolute path would read, write or delete outside the layer: the parent directory, a sibling
layer. Every such name passes `inside_layer` before anything is read, written or deleted.
"""
from igneous_like.errors import UserError

INFO_NAMES = ("mesh", "skeletons", "segment_properties")


def inside_layer(name, what: str) -> str:
    """`name` if it is a relative path that stays inside the layer (no `..` or `.` part, not
    absolute, no URL); otherwise a UserError."""
    parts = name.replace("\\", "/").split("/") if isinstance(name, str) else ()
    if (not isinstance(name, str) or not name.strip("/\\") or "://" in name or "\0" in name
            or name.startswith(("/", "\\", "~")) or any(part in (".", "..") for part in parts)):
        raise UserError(f"{what} {name!r} is not a path inside the layer: give a relative name without "
                        "'.' or '..' parts (e.g. mesh)")
    return name


def check_info(info: dict, layer: str) -> None:
    """Every name the info joins onto `layer`: its mesh, skeleton and segment properties
    directories and each scale's key."""
    for key in INFO_NAMES:
        if key in info:
            inside_layer(info[key], f"the info of {layer} names {key}")
    for mip, scale in enumerate(info.get("scales") or ()):
        if isinstance(scale, dict) and "key" in scale:
            inside_layer(scale["key"], f"the info of {layer} gives mip {mip} the key")
