"""Zoho's error vocabulary, raised by the engine and rendered by the HTTP layer.

``RequestError`` fails a whole request (Zoho answers with a bare error object);
``RecordError`` fails one record of a batch (an item of ``data[]``).
"""

from __future__ import annotations

from typing import Any


class ZohoError(Exception):
    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details if details is not None else {}

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "details": self.details, "message": self.message,
                "status": "error"}


class RequestError(ZohoError):
    """The request as a whole is refused."""


class RecordError(ZohoError):
    """One record of a batch is refused; nothing of it is written."""


def required_param(name: str) -> RequestError:
    return RequestError("REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                        {"param_name": name})


def array_param(value: Any, name: str, limit: int, message: str = "limit exceeded") -> list[Any]:
    """A body's array parameter (``data``, ``fields``, ...): present, an array, not too long."""
    if value is None or value == []:
        raise required_param(name)
    if not isinstance(value, list):
        raise RequestError("INVALID_DATA", "invalid data",
                           {"expected_data_type": "jsonarray", "api_name": name,
                            "json_path": f"$.{name}"})
    if len(value) > limit:
        raise RequestError("LIMIT_EXCEEDED", message,
                           {"limit": limit, "api_name": name, "json_path": f"$.{name}"})
    return value


def invalid_module(name: str) -> RequestError:
    return RequestError("INVALID_MODULE", "the module name given seems to be invalid",
                        {"resource_path_index": 0})


def invalid_data(message: str = "invalid data", **details: Any) -> RequestError:
    return RequestError("INVALID_DATA", message, details)


def invalid_id(record_id: Any) -> RecordError:
    return RecordError("INVALID_DATA", "the id given seems to be invalid", {"id": str(record_id)})
