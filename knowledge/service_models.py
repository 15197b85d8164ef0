"""Validated inputs of the knowledge base's service calls (no LlamaIndex import: cheap for every surface)."""

from __future__ import annotations

import re
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator

from engine.errors import ValidationFailedError
from knowledge.models import DocumentKind

NOTE_SCHEME: Final = "note"
JOURNAL_SCHEME: Final = "journal"
URI = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$")
_MAX_QUERY_CHARS: Final = 2000
_MAX_TITLE_CHARS: Final = 300


class NoteInput(BaseModel):
    """A note as given by a caller (an MCP client, the journal, a script): validated before anything is stored."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    title: str = Field(min_length=1, max_length=_MAX_TITLE_CHARS)
    text: str = Field(min_length=1)
    kind: DocumentKind = "note"
    tags: tuple[str, ...] = ()
    source: str | None = Field(None, description="a URI naming the note; adding the same URI again updates it")
    metadata: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("source")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        if value is not None and not URI.match(value):
            raise ValueError("must be a URI such as note://my-idea or https://example.org/post (files use paths)")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(tag.strip() for tag in value if tag.strip()))


class SearchQuery(BaseModel):
    """A retrieval request, validated."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    query: str = Field(min_length=1, max_length=_MAX_QUERY_CHARS)
    k: int = Field(ge=1)
    kinds: tuple[DocumentKind, ...] | None = None
    hybrid: bool = True


def validated(model: type[BaseModel], **values: Any) -> Any:
    try:
        return model.model_validate(values)
    except ValidationError as error:
        details = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in error.errors())
        raise ValidationFailedError(f"invalid {model.__name__}: {details}") from None
