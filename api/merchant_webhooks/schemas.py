"""Bodies of the merchant webhook routes (``/v1/admin/webhook-endpoints``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, model_validator

from api.shared.schemas import Input, Page
from fulfillment.merchant_events import ALL_EVENTS, EVENT_TYPES

EventType = Literal[(*EVENT_TYPES, ALL_EVENTS)]  # type: ignore[valid-type]
#: Longest URL an endpoint may have.
MAX_URL = 2048

_EVENTS_DOC = f"event types to receive, or {ALL_EVENTS!r} for all: {', '.join(EVENT_TYPES)}"


class EndpointCreate(Input):
    url: str = Field(min_length=1, max_length=MAX_URL, description="https://…",
                     examples=["https://merchant.example.com/hooks/fulfillment"])  # fmt: skip
    events: list[EventType] = Field(min_length=1, max_length=len(EVENT_TYPES) + 1,
                                    description=_EVENTS_DOC)  # fmt: skip


class EndpointUpdate(Input):
    """Only the fields sent change; each may be left out but not sent as null.
    Enabling an endpoint again forgets its failures."""

    url: str = Field(default=None, min_length=1, max_length=MAX_URL)  # type: ignore[assignment]
    events: list[EventType] = Field(default=None, min_length=1,  # type: ignore[assignment]
                                    max_length=len(EVENT_TYPES) + 1)  # fmt: skip
    disabled: StrictBool = None  # type: ignore[assignment]


class EndpointOut(BaseModel):
    id: UUID
    url: str
    events: list[str]
    disabled: bool
    disabled_at: datetime | None
    disabled_reason: str | None
    failing_since: datetime | None = Field(description="every delivery has failed since")
    previous_secret_expires_at: datetime | None = Field(
        description="after a rotation, the old secret signs too until then"
    )
    created_at: datetime
    updated_at: datetime


class EndpointWithSecret(EndpointOut):
    secret: str = Field(description="the signing secret (whsec_…), shown only now")


class EndpointList(Page[EndpointOut]):
    pass


class AttemptOut(BaseModel):
    id: int
    delivery_id: UUID
    event_id: str
    event_type: str
    attempt: int
    outcome: Literal["delivered", "failed"]
    response_code: int | None
    latency_ms: int
    error: str | None
    created_at: datetime


class AttemptPage(Page[AttemptOut]):
    pass


class RedeliverRequest(Input):
    """One event by id, or every event the endpoint subscribes to in [from, to)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    event_id: str | None = Field(default=None, pattern=r"^evt_[0-9a-f]{32}$")
    from_: AwareDatetime | None = Field(default=None, alias="from")
    to: AwareDatetime | None = None

    @model_validator(mode="after")
    def _one_way(self) -> RedeliverRequest:
        ranged = self.from_ is not None or self.to is not None
        if (self.event_id is None) == (not ranged):
            raise ValueError("send either event_id, or from and to")
        if ranged and (self.from_ is None or self.to is None or self.from_ >= self.to):
            raise ValueError("from and to are both needed, from before to")
        return self


class Redelivered(BaseModel):
    redelivered: int = Field(description="deliveries queued again")
