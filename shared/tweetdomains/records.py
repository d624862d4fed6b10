"""The record: one labeled tweet, as the collector writes it and the trainer reads it.

The JSON shape is the contract in INTERFACE.md::

    {"id": "148..." | null, "text": "...", "lang": "en" | null, "created_at": "..." | null,
     "domains": ["Musician", "Person"], "domain_ids": ["54", "10"], "entities": ["Taylor Swift"]}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


class RecordError(ValueError):
    """A JSON object that is not a valid record; the message says which field is wrong."""


def _str_list(obj: dict[str, Any], key: str) -> list[str]:
    value = obj.get(key, [])
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
        raise RecordError(f"field {key!r} must be a list of strings")
    return [str(v) for v in value]


def _opt_str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RecordError(f"field {key!r} must be a string or null")
    return str(value)


@dataclass(frozen=True, slots=True)
class Record:
    """One tweet with its context-annotation domains (the labels) and entity names."""

    text: str
    domains: tuple[str, ...] = ()
    domain_ids: tuple[str, ...] = ()
    entities: tuple[str, ...] = ()
    id: str | None = None
    lang: str | None = None
    created_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """The INTERFACE.md JSON object (``extra`` is not written)."""
        return {
            "id": self.id,
            "text": self.text,
            "lang": self.lang,
            "created_at": self.created_at,
            "domains": list(self.domains),
            "domain_ids": list(self.domain_ids),
            "entities": list(self.entities),
        }

    def to_json(self) -> str:
        """One JSONL line, without the newline."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, obj: Any, label_field: str = "domains") -> Record:
        """Validate a decoded JSON object; ``label_field`` lets other label sets
        (TweetTopicXL's ``topics``) be read as domains."""
        if not isinstance(obj, dict):
            raise RecordError("a record must be a JSON object")
        text = obj.get("text")
        if not isinstance(text, str):
            raise RecordError("field 'text' must be a string")
        if label_field not in obj and label_field == "domains" and "topics" in obj:
            label_field = "topics"
        return cls(
            text=text,
            domains=tuple(_str_list(obj, label_field)),
            domain_ids=tuple(_str_list(obj, "domain_ids")),
            entities=tuple(_str_list(obj, "entities")),
            id=_opt_str(obj, "id"),
            lang=_opt_str(obj, "lang"),
            created_at=_opt_str(obj, "created_at"),
        )
