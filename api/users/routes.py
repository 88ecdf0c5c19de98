"""The users' routes: registration, the caller's profile, log in, refresh, log out and
password reset."""

from __future__ import annotations

from api.shared.routing import Route
from api.users import auth, password_reset
from api.users import views as users
from api.users.schemas import (
    LoginRequest,
    PasswordResetAccepted,
    PasswordResetConfirm,
    PasswordResetRequest,
    RefreshRequest,
    RegisterRequest,
    TokenOut,
    UpdateMeRequest,
    UserOut,
)

ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/v1/users",
        users.register,
        "Register a customer",
        "users",
        request=RegisterRequest,
        response=UserOut,
        status=201,
        errors=(409, 429),
    ),
    Route(
        "GET",
        "/v1/users/me",
        users.get_me,
        "The caller's profile",
        "users",
        "user",
        response=UserOut,
    ),
    Route(
        "PATCH",
        "/v1/users/me",
        users.update_me,
        "Change the caller's name or password (a new password ends every session, this one too)",
        "users",
        "user",
        request=UpdateMeRequest,
        response=UserOut,
        errors=(429,),
    ),
    Route(
        "POST",
        "/v1/auth/login",
        auth.login,
        "Log in: an access and a refresh token",
        "auth",
        request=LoginRequest,
        response=TokenOut,
        errors=(401, 429),
    ),
    Route(
        "POST",
        "/v1/auth/refresh",
        auth.refresh,
        "Rotate a refresh token",
        "auth",
        request=RefreshRequest,
        response=TokenOut,
        errors=(401, 429),
    ),
    Route(
        "POST",
        "/v1/auth/logout",
        auth.logout,
        "Revoke the session of a refresh token",
        "auth",
        request=RefreshRequest,
        status=204,
        errors=(429,),
    ),
    Route(
        "POST",
        "/v1/auth/password-reset",
        password_reset.request_reset,
        "Mail a password reset link (the same answer whether or not the account exists)",
        "auth",
        request=PasswordResetRequest,
        response=PasswordResetAccepted,
        status=202,
        errors=(429,),
    ),
    Route(
        "POST",
        "/v1/auth/password-reset/confirm",
        password_reset.confirm_reset,
        "Set a new password with a reset token; ends every session",
        "auth",
        request=PasswordResetConfirm,
        status=204,
        errors=(400, 429),
    ),
)
