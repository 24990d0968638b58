"""API errors and the ``Status`` objects a real API server answers them with."""

from __future__ import annotations

from typing import Any

_REASON_CODES = {
    "BadRequest": 400,
    "Unauthorized": 401,
    "Forbidden": 403,
    "NotFound": 404,
    "MethodNotAllowed": 405,
    "NotAcceptable": 406,
    "AlreadyExists": 409,
    "Conflict": 409,
    "Gone": 410,
    "Expired": 410,
    "UnsupportedMediaType": 415,
    "Invalid": 422,
    "TooManyRequests": 429,
    "InternalError": 500,
    "ServiceUnavailable": 503,
}


class ApiError(Exception):
    """An error the server answers with a ``Status`` body."""

    def __init__(self, reason: str, message: str, *, code: int | None = None,
                 details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.code = code if code is not None else _REASON_CODES.get(reason, 500)
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        """The ``Status`` object for this error, shaped like kube-apiserver's."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        }
        if self.reason:
            body["reason"] = self.reason
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def not_found(group: str, resource: str, name: str) -> ApiError:
    """404 for a named object, worded like ``deployments.apps "web" not found``."""
    qualified = f"{resource}.{group}" if group else resource
    details = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    return ApiError("NotFound", f'{qualified} "{name}" not found', details=details)


def already_exists(group: str, resource: str, name: str) -> ApiError:
    """409 AlreadyExists for a create that collides with an existing object."""
    qualified = f"{resource}.{group}" if group else resource
    details = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    return ApiError("AlreadyExists", f'{qualified} "{name}" already exists', details=details)


def invalid(group: str, kind: str, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 Invalid, listing each offending field like the real validation errors."""
    qualified = f"{kind}.{group}" if group else kind
    text = "; ".join(f"{field}: {msg}" for field, msg in causes)
    details: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "causes": [{"reason": "FieldValueInvalid", "message": msg, "field": field}
                   for field, msg in causes],
    }
    if group:
        details["group"] = group
    return ApiError("Invalid", f'{qualified} "{name}" is invalid: {text}', details=details)
