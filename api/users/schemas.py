"""What the users' and auth routes take and answer: registration, the profile, tokens and
password reset."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, EmailStr, Field, StringConstraints

from api.shared.schemas import Input

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


Password = Annotated[str, Field(min_length=10, max_length=128)]


class RegisterRequest(Input):
    email: EmailStr = Field(max_length=320)
    password: Password
    first_name: Name
    last_name: Name


class UpdateMeRequest(Input):
    first_name: Name | None = None
    last_name: Name | None = None
    password: Password | None = None
    current_password: str | None = Field(
        default=None, max_length=128, description="required when changing the password"
    )


class UserOut(BaseModel):
    id: UUID
    email: str
    first_name: str
    last_name: str
    role: Literal["customer", "admin"]
    created_at: datetime


class LoginRequest(Input):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=128)


class RefreshRequest(Input):
    refresh_token: str = Field(min_length=1, max_length=200)


class PasswordResetRequest(Input):
    email: str = Field(min_length=1, max_length=320)


class PasswordResetAccepted(BaseModel):
    """The same answer whether or not an account has the e-mail."""

    accepted: Literal[True] = True
    message: str


class PasswordResetConfirm(Input):
    token: str = Field(min_length=1, max_length=200)
    password: Password


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
