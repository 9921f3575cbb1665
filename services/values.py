"""What the server's and the trainer's settings share: how a bad value is quoted, and what a path may be.

Both programs name a bad setting with its value (``MODEL_NAME='Bad/Name': ...``). A value can be
huge (a 100 kB variable): it is quoted cut, with its length, never repeated in full. A path the
kernel would refuse (``ENAMETOOLONG``) is refused at start, naming the setting, instead of ending
later as an ``OSError`` traceback. Standard library only.
"""

from __future__ import annotations

import os
import re

#: Linux's limits: a whole path, and one component of it, in bytes.
PATH_MAX = 4096
NAME_MAX = 255
_SHOWN = 80  # a digest (71 characters) is shown whole
#: C0 controls and DEL: in a name, a path or a level they are a mistake (or an attack on a log).
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def shown(value: object, *, quoted: bool = True) -> str:
    """``value`` as a message repeats it: its ``repr`` (a printable string bare, if asked), cut at
    80 characters with its length. The generator's messages use it too (``generator/inputs.py``)."""
    text = value if isinstance(value, str) else None
    out = repr(value) if quoted or text is None or CONTROL.search(text) else text
    if len(out) <= _SHOWN:
        return out
    length = len(text) if text is not None else len(out)
    return f"{out[: _SHOWN - 5]}…{out[-2:]} ({length:,} characters)"


def fitting_path(value: str) -> str:
    """``value`` unchanged if the kernel can open it: at most PATH_MAX bytes, each part at most NAME_MAX."""
    encoded = os.fsencode(value)
    if len(encoded) > PATH_MAX:
        raise ValueError(f"is {len(encoded):,} bytes long; a path holds at most {PATH_MAX} (PATH_MAX)")
    longest = max((len(part) for part in encoded.split(b"/")), default=0)
    if longest > NAME_MAX:
        raise ValueError(f"has a {longest}-byte component; one holds at most {NAME_MAX} (NAME_MAX)")
    return value


def without_control(value: str) -> str:
    """``value`` unchanged unless it holds a control character (a pasted newline, an escape, NUL)."""
    if CONTROL.search(value):
        raise ValueError("holds a control character")
    return value
