"""Request and response bodies (also the OpenAPI schema and its examples)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

# X Premium posts run to 25,000 characters; longer texts are refused (422), shorter ones are
# truncated to the model's token window.
MAX_TEXT_CHARS = 25_000
MAX_TEXTS_PER_BATCH = 256

EXAMPLE_TEXT = "Taylor Swift just dropped a new album and it's incredible 🎵"


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or whitespace only")
    return value


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"text": EXAMPLE_TEXT}]})

    # The limits are checked by the route (its message names the limit) and documented as
    # maxLength / maxItems in OpenAPI with the values the server runs with.
    text: str = Field(description="the tweet text", json_schema_extra={"maxLength": MAX_TEXT_CHARS})

    _check = field_validator("text")(_not_blank)


class BatchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"texts": [EXAMPLE_TEXT, "What a goal by Messi tonight ⚽"]}]},
    )

    texts: list[str] = Field(
        min_length=1,
        description="tweet texts, classified in order",
        json_schema_extra={
            "maxItems": MAX_TEXTS_PER_BATCH,
            "items": {"type": "string", "maxLength": MAX_TEXT_CHARS},
        },
    )

    @field_validator("texts")
    @classmethod
    def _each_not_blank(cls, texts: list[str]) -> list[str]:
        for i, text in enumerate(texts):
            if not text.strip():
                raise ValueError(f"texts[{i}] must not be empty or whitespace only")
        return texts


class DomainScore(BaseModel):
    name: str
    probability: float


class ClassifyResult(BaseModel):
    domains: list[DomainScore] = Field(description="every domain the model knows, highest first")
    predicted: list[str] = Field(description="domains over their tuned thresholds (the top one if none is)")
    cached: bool


class ClassifyResponse(ClassifyResult):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model_version": "lstm-20261129-031500-a1b2c3",
                    "domains": [
                        {"name": "Musician", "probability": 0.97},
                        {"name": "Person", "probability": 0.95},
                    ],
                    "predicted": ["Musician", "Person"],
                    "cached": False,
                }
            ]
        }
    )
    model_version: str


class BatchResponse(BaseModel):
    model_version: str
    results: list[ClassifyResult]


class FieldError(BaseModel):
    field: str = Field(description="where in the body, e.g. `text` or `texts[3]`")
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """Every error: a sentence, plus the field errors of a body that failed validation."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"detail": "text: String should have at least 1 character"}]}
    )

    detail: str = Field(description="what went wrong, as a sentence")
    errors: list[FieldError] | None = Field(default=None, description="field errors, when validation failed")


class ReadyResponse(BaseModel):
    status: str = Field(description="`ready` once a model is loaded, else `loading`")
    model: str | None
    cache: dict[str, str]
    queue: dict[str, int | bool] = Field(description="texts queued, the bound, whether a pass runs")
    last_reload_error: str | None


class Lineage(BaseModel):
    """What a run was trained on (absent for runs published before lineage was recorded)."""

    model_config = ConfigDict(extra="allow")

    store: str | None = None
    raw_batches: int | None = None
    raw_first_key: str | None = None
    raw_last_key: str | None = None
    records: int | None = None
    data_sha256: str | None = None
    recipe: object | None = Field(default=None, description="the training recipe, as the trainer names it")
    git_commit: str | None = None
    label_counts: dict[str, float] | None = Field(default=None, description="training labels per domain")


class ModelResponse(BaseModel):
    run_id: str
    created_at: str | None
    precision: str
    labels: int
    metrics: dict[str, object]
    lineage: Lineage | None
    drift: dict[str, object] = Field(
        description="predicted-domain shares of the recent texts (`live`) beside the training labels'"
    )
