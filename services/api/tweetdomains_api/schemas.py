"""Request and response bodies (also the OpenAPI schema and its examples)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

EXAMPLE_TEXT = "Taylor Swift just dropped a new album and it's incredible 🎵"


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or whitespace only")
    return value


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"text": EXAMPLE_TEXT}]})

    text: str = Field(description="the tweet text")

    _check = field_validator("text")(_not_blank)


class BatchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"texts": [EXAMPLE_TEXT, "What a goal by Messi tonight ⚽"]}]},
    )

    texts: list[str] = Field(min_length=1, description="tweet texts, classified in order")

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


class ErrorResponse(BaseModel):
    detail: object
