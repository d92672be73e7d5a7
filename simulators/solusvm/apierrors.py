"""Failures a simulator route answers with, in SolusVM 2's (Laravel's) wire shapes."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Raised anywhere below a route; the route wrapper turns it into a JSON response."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {body.get('message')}")
        self.status = status
        self.body = body
        self.headers = headers or {}


class Invalid(ApiError):
    """422 with Laravel's validation body: ``{"message": ..., "errors": {field: [msg, ...]}}``."""

    def __init__(self, errors: dict[str, list[str]], message: str = "The given data was invalid.") -> None:
        super().__init__(422, {"message": message, "errors": errors})
        self.errors = errors


def not_found() -> ApiError:
    return ApiError(404, {"message": "Not found."})


def unauthenticated() -> ApiError:
    return ApiError(401, {"message": "Unauthenticated."})


def forbidden() -> ApiError:
    return ApiError(403, {"message": "This action is unauthorized."})
