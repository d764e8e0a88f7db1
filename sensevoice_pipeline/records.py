"""Typed records that steps hand each other (a release's export, stage, canary and decision; a day's batch, publish
and run): frozen dataclasses, so a step's result cannot be changed behind the next step's back, with the one
serialised form that XCom, the release report and ``--json`` outputs carry (:meth:`Record.to_dict`)."""

from __future__ import annotations

import dataclasses
from typing import Any, Self


@dataclasses.dataclass(frozen=True)
class Record:
    """Base of the records: plain JSON-serialisable fields only (numbers, strings, lists, dicts, None)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | Self | None) -> Self | None:
        """The record from its serialised form (None stays None; unknown keys are ignored, so a record written by
        an older release of the code still reads)."""
        if data is None or isinstance(data, cls):
            return data
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
