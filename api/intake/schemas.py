"""What the provider webhook routes answer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class WebhookAck(BaseModel):
    received: Literal[True]
    duplicate: bool = Field(description="the event was stored before; nothing happened again")
