"""Every error the service answers, in one shape and never with a traceback.

422: ``{"detail": [{"field": "ranks", "message": "...", "accepted": "..."}]}``, one entry per
invalid field, whether pydantic found it (types, ranges) or the planner/tuner's own checks did
(the same parsers as the CLIs: one source of truth for what is accepted). Other errors:
``{"detail": "one line"}``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("floss.serve")


class FieldError(ValueError):
    """One invalid request field: its name, what is wrong, and what is accepted."""

    def __init__(self, field: str, message: str, accepted: str = "") -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.accepted = accepted

    def entry(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message, "accepted": self.accepted}


class ServiceError(Exception):
    """A request that is well formed but cannot be served now (404, 409, 429, ...)."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


# What each field accepts, said once for the 422 answers (pydantic's own message says what was
# wrong; this says what would be right).
ACCEPTED: dict[str, str] = {}

_FLAG = re.compile(r"^(?:the )?(--[a-z][a-z0-9-]*)")


def field_of_message(message: str, default: str) -> str:
    """The request field a planner/tuner message names by its CLI flag (``--num-clients`` ->
    ``num_clients``), else ``default``."""
    m = _FLAG.match(message)
    if m:
        return m.group(1).lstrip("-").replace("-", "_")
    if message.startswith("budget "):
        return "budget"
    return default


def _loc_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    # pydantic reports the member of a union it tried ("ranks.str", "ranks.list[int]"): drop it
    parts = [p for p in parts if not re.match(r"^(str|int|float|list\[.*\]|function-.*)$", p)]
    return ".".join(parts) or "body"


def validation_entries(errors: Sequence[Any]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for err in errors:
        loc = tuple(err.get("loc", ()))
        name = _loc_name(loc)
        if err.get("type") == "json_invalid":
            name = "body"
        message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        top = name.split(".")[0]
        accepted = ACCEPTED.get(name) or ACCEPTED.get(top) or ""
        raised = (err.get("ctx") or {}).get("error")
        if isinstance(raised, FieldError):  # a check that names its own field (base.fleet)
            parent = _loc_name(loc[:-1])
            name = raised.field if parent == "body" else f"{parent}.{raised.field}"
            message, accepted = raised.message, raised.accepted or accepted
        if err.get("type") == "extra_forbidden":
            accepted = "no such field; see the request schema at /openapi.json"
        if name == "body" and not accepted:
            accepted = "a JSON object (Content-Type: application/json), see /openapi.json"
        if name in seen:  # a union reports each member's failure: keep the first
            continue
        seen.add(name)
        out.append({"field": name, "message": message, "accepted": accepted})
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_entries(exc.errors())}, status_code=422)

    @app.exception_handler(ValidationError)
    async def _invalid_stored(_request: Request, exc: ValidationError) -> JSONResponse:
        # a request read back from the storage (resume) is checked again, paths included
        return JSONResponse({"detail": validation_entries(exc.errors())}, status_code=422)

    @app.exception_handler(FieldError)
    async def _field(_request: Request, exc: FieldError) -> JSONResponse:
        entry = exc.entry()
        if not entry["accepted"]:
            entry["accepted"] = ACCEPTED.get(exc.field, "")
        return JSONResponse({"detail": [entry]}, status_code=422)

    @app.exception_handler(ServiceError)
    async def _service(_request: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        # the traceback goes to the service's log, never into the answer
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"detail": f"internal error ({type(exc).__name__}); the service log has the details"},
            status_code=500,
        )
