"""HTTP answers of the local Hub: the response record, JSON and error answers, value helpers."""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from typing import Any


def _iso(ts: float) -> str:
    moment = _dt.datetime.fromtimestamp(ts, tz=_dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _header_safe(text: str) -> str:
    return text.encode("ascii", "backslashreplace").decode("ascii").replace("\n", " ")[:500]


def _truthy(values: list[str] | None) -> bool:
    return bool(values) and values[-1].lower() in ("1", "true", "yes")


class HubError(Exception):
    """An HTTP error answer: status, message, optional ``X-Error-Code`` and extra headers."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        body: dict | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.body = body


@dataclass
class _Response:
    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_length: int | None = None  # for HEAD: the length GET would send
    truncate: int | None = None  # failure injection: send only this many body bytes, then close
    served: bool = False  # a file download: count the body bytes actually sent


def _json_response(data: Any, status: int = 200, headers: list | None = None) -> _Response:
    body = json.dumps(data).encode()
    hdrs = [("Content-Type", "application/json; charset=utf-8"), *(headers or [])]
    return _Response(status=status, body=body, headers=hdrs)


def _error_response(err: HubError) -> _Response:
    body = dict(err.body or {})
    body.setdefault("error", err.message)
    headers = [("X-Error-Message", _header_safe(err.message))]
    if err.code:
        headers.append(("X-Error-Code", err.code))
    headers.extend(err.headers.items())
    return _json_response(body, status=err.status, headers=headers)
