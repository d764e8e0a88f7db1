"""How the plugin page writes a value: as display text, HTML-escaped, and without the server's filesystem paths.

Shared by the page's data (``page_models`` formats export times with it) and its HTML (every value goes through
``esc``; free text from data and errors through ``redact`` first).
"""

from __future__ import annotations

import datetime as dt
import html
import os
import re
from pathlib import Path
from typing import Any

# An absolute POSIX path inside a text (an error message, a note): one or more folders and a last part. Not a URL's
# path (``s3://b/k``, ``http://h/p``) nor a relative one (``calls/a.wav``): the character before the slash decides.
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~\]-])/(?:[^\s/'\"<>;,()\[\]{}]+/)+([^\s/'\"<>;,()\[\]{}]*)")


# A server's network address inside a text: an IPv4 address or a bracketed IPv6 one, with or without a port, or a
# host name with a port (``triton:8001``). Error messages from gRPC and Triton name them.
NETWORK_ADDRESS = re.compile(
    r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?\b|\[[0-9a-fA-F:]+\](?::\d{1,5})?"
    r"|\b[A-Za-z][\w.-]*:\d{2,5}(?![.\d])"
)


def for_viewer(text: Any) -> str:
    """An error as a page's viewer (or an API client of the page) may read it: no server path, no internal address."""
    return NETWORK_ADDRESS.sub("[server]", redact(text))


def display_text(value: Any) -> str:
    """A value as the page shows it: times in UTC to the second, yes / no, numbers with thousands separators."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value)


def esc(value: Any) -> str:
    return html.escape(display_text(value), quote=True)


def redact(text: Any, roots: dict[str, Any] | None = None) -> str:
    """``text`` without server paths: a known root (the lake, the model repository) becomes its name in brackets,
    any other absolute path its last part (``…/call.wav``). The page shows no filesystem path of the server."""
    out = display_text(text)
    for name, root in (roots or {}).items():
        if not isinstance(root, (str, os.PathLike)):  # an s3:// lake (storage.ObjectPath): not a server path
            continue
        forms = {str(p).rstrip("/") for p in (Path(root), Path(root).resolve()) if p.is_absolute()}
        for form in sorted(forms - {""}, key=len, reverse=True):
            out = out.replace(form, f"[{name}]")
    return ABSOLUTE_PATH.sub(lambda m: "…/" + m.group(1) if m.group(1) else "…/", out)
