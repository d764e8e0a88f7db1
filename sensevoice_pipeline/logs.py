"""How `svp` logs: readable lines on a terminal, or one JSON object per line for a log shipper (``--log-format
json`` / $SVP_LOG_FORMAT). Airflow tasks log through Airflow's own handlers and are not touched here."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys

LOG_FORMAT_ENV = "SVP_LOG_FORMAT"
LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET_LOGGERS = ("matplotlib", "PIL")  # their debug output drowns ours under -v


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message"}`` (plus ``"exception"`` with its traceback) on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted (as ``logging.lastResort`` does): a progress
    bar, or a caller that swapped stderr, gets the lines."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def configure_logging(verbose: bool = False, log_format: str = "text") -> None:
    """The root logger at INFO (DEBUG with ``verbose``) on stderr, in ``log_format``. Called again, it replaces its
    own handler and leaves any other (an embedding program's, pytest's) alone."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r}: expected one of {', '.join(LOG_FORMATS)}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, StderrHandler)]:
        root.removeHandler(old)
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
