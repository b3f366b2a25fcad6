"""The page's routes: ``/`` (plan form, plan, studies), the studies section alone for the live
refresh, the study form's submit and each study's stop and resume, and a plan's downloads.

Every action goes through the API's own functions (``PlanRequest`` and ``check_plan_work`` for a
plan; ``StudyRequest``, ``StudyManager.prepare_submit`` / ``prepare_resume`` / ``stop`` for a
study), so the page accepts exactly what the API accepts and shows the same errors, each naming
its field. A form POST answers 303 to the page (``#studies``) or the page again with the errors.
POSTs from another site are refused (``Origin`` / ``Sec-Fetch-Site``): a page on the web must not
start or stop studies on a service bound to this machine.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from pydantic import ValidationError

from service import web
from service.cancel import Cancelled, run_while_connected
from service.config import ServeConfig
from service.errors import ACCEPTED, FieldError, ServiceError, validation_entries
from service.limits import check_plan_work
from service.plans import plan_file, plan_payload
from service.schemas import PlanRequest, StudyRequest
from service.studies import StudyManager

T = TypeVar("T")
MAX_FORM_FIELDS = 64
# the page's fields that are not PlanRequest's: the table's rows, the token (security.py)
PAGE_ONLY = ("token",)


def _plan_params(request: Request) -> dict[str, str]:
    params = {k: v for k, v in request.query_params.items() if v != "" and k not in PAGE_ONLY}
    if "fleet" in params:  # the profile select always sends a value; a fleet replaces it
        params.pop("profile", None)
    return params


def _same_site(request: Request) -> None:
    """Refuse a form POST another site's page made (the service may hold a token cookie)."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise ServiceError(403, "a form from another site cannot act on this service")
    origin = request.headers.get("origin")
    if origin and origin != "null":
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if origin != own:
            raise ServiceError(403, f"a form from {origin} cannot act on this service")


def study_payload(form: dict[str, str]) -> dict[str, Any]:
    """The StudyRequest body of the study form: empty fields left out (floss-tune's defaults),
    ``base.*`` fields and the JSON of ``base_extra`` into ``base``."""
    body: dict[str, Any] = {}
    base: dict[str, Any] = {}
    extra = form.get("base_extra", "").strip()
    if extra:
        try:
            parsed = json.loads(extra)
        except json.JSONDecodeError as exc:
            raise FieldError(
                "base", f"the base run config is not JSON: {exc.msg} (line {exc.lineno})"
            ) from None
        if not isinstance(parsed, dict):
            raise FieldError("base", "the base run config must be a JSON object")
        base.update(parsed)
    for key, value in form.items():
        value = value.strip()
        if key == "base_extra" or value == "":
            continue
        if key.startswith("base."):
            base[key.removeprefix("base.")] = value
        else:
            body[key] = value
    body["base"] = base
    return body


def install_page(
    app: FastAPI,
    *,
    config: ServeConfig,
    studies: StudyManager,
    submit_lock: asyncio.Lock,
) -> None:
    def studies_section() -> str:
        try:
            listed, failure = studies.list(trials=True), None
        except (ValueError, ServiceError) as exc:
            listed, failure = [], str(exc)
        return web.studies_html(listed, error=failure)

    def render(
        request: Request,
        *,
        study_values: dict[str, str] | None = None,
        study_message: str = "",
        status: int = 200,
        computed: dict[str, Any] | FieldError | None = None,
    ) -> HTMLResponse:
        """The page; ``computed``: the plan's payload (or its error) already computed."""
        from planner.profiles import list_profiles

        params = _plan_params(request)
        show_all = params.pop("rows", "") == "all"
        names = {k: [e.name for e in list_profiles(k)] for k in ("network", "model", "fleet")}
        shown = {**PlanRequest().model_dump(), **params, "rows": "all" if show_all else ""}
        section = ""
        if params:
            try:
                req = PlanRequest.model_validate({**params, "rows": "all"})
                check_plan_work(req, config.max_plan_work)
                query = urlencode(params)
                if isinstance(computed, FieldError):
                    raise computed
                payload = computed or plan_payload(req, config.data_root_resolved)
                section = web.plan_section(payload, query=query, show_all=show_all)
            except ValidationError as exc:
                section, status = web.errors_html(validation_entries(exc.errors())), 422
            except FieldError as exc:
                section, status = web.errors_html([exc.entry()]), 422
        html = web.page(
            form=web.plan_form(
                shown, networks=names["network"], models=names["model"], fleets=names["fleet"]
            ),
            plan_section=section,
            study_form=web.study_form(study_values or {}, message=study_message),
            studies_section=studies_section(),
        )
        return HTMLResponse(html, status_code=status)

    def gone(seconds: float) -> None:
        sys.stderr.write(
            f"floss serve: plan stopped after {seconds:.1f} s: its client disconnected\n"
        )

    async def compute_while_connected(request: Request, fn: Callable[..., T], *args: Any) -> T:
        return await run_while_connected(request.is_disconnected, fn, *args, on_cancel=gone)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index(request: Request) -> Response:
        """The page; its plan is computed apart, and stopped when the browser goes away."""
        params = _plan_params(request)
        params.pop("rows", None)
        computed: dict[str, Any] | FieldError | None = None
        if params:
            try:
                req = PlanRequest.model_validate({**params, "rows": "all"})
                check_plan_work(req, config.max_plan_work)
            except (ValidationError, FieldError):
                req = None  # render shows the errors, each naming its field
            if req is not None:
                try:
                    computed = await compute_while_connected(
                        request, plan_payload, req, config.data_root_resolved
                    )
                except FieldError as exc:
                    computed = exc
                except Cancelled:
                    return Response(status_code=499)  # nobody reads it: the browser has gone
        return await run_in_threadpool(lambda: render(request, computed=computed))

    @app.get("/page/studies", response_class=HTMLResponse, include_in_schema=False)
    def studies_fragment() -> HTMLResponse:
        return HTMLResponse(studies_section(), headers={"Cache-Control": "no-store"})

    async def read_form(request: Request) -> dict[str, str]:
        raw = (await request.body()).decode("utf-8", "replace")
        pairs = parse_qsl(raw, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
        return dict(pairs)

    def failed(
        request: Request, values: dict[str, str], entries: list[dict[str, str]], status: int
    ) -> HTMLResponse:
        message = web.errors_html(entries, box_id="study-errors")
        return render(request, study_values=values, study_message=message, status=status)

    async def act(request: Request, values: dict[str, str], work: Callable[[], Any]) -> Response:
        try:
            await work()
        except ValidationError as exc:
            return failed(request, values, validation_entries(exc.errors()), 422)
        except FieldError as exc:
            entry = exc.entry()
            entry["accepted"] = entry["accepted"] or ACCEPTED.get(exc.field, "")
            return failed(request, values, [entry], 422)
        except ServiceError as exc:
            entry = {"field": "study", "message": exc.message, "accepted": ""}
            return failed(request, values, [entry], exc.status)
        return RedirectResponse("/#studies-title", status_code=303)

    @app.post("/page/studies", include_in_schema=False)
    async def submit_from_page(request: Request) -> Response:
        _same_site(request)
        try:
            values = await read_form(request)
        except ValueError:
            return PlainTextResponse(f"at most {MAX_FORM_FIELDS} form fields", status_code=413)

        async def work() -> None:
            req = StudyRequest.model_validate(study_payload(values))
            async with submit_lock:  # as POST /api/studies
                checked = await run_in_threadpool(studies.prepare_submit, req)
                studies.spawn(checked)

        return await act(request, values, work)

    @app.post("/page/studies/{name}/{action}", include_in_schema=False)
    async def study_action(request: Request, name: str, action: str) -> Response:
        _same_site(request)
        if action not in ("stop", "resume") or len(name) > 128:
            return PlainTextResponse("no such action", status_code=404)

        async def work() -> None:
            if action == "stop":
                await run_in_threadpool(studies.stop, name, force=False)
                return
            async with submit_lock:  # as POST /api/studies/{name}/resume
                req = await run_in_threadpool(studies.prepare_resume, name)
                studies.spawn(req)

        return await act(request, {}, work)

    async def download(request: Request, fmt: str) -> Response:
        params = _plan_params(request)
        params.pop("rows", None)
        req = PlanRequest.model_validate(params)  # a 422 naming the field, as the API
        check_plan_work(req, config.max_plan_work)
        try:
            text = await compute_while_connected(
                request, lambda: plan_file(req, config.data_root_resolved, fmt=fmt)
            )
        except Cancelled:
            return Response(status_code=499)
        kind = "text/csv" if fmt == "csv" else "application/json"
        return Response(
            content=text,
            media_type=f"{kind}; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="floss-plan.{fmt}"'},
        )

    @app.get("/plan.csv", include_in_schema=False)
    async def plan_csv(request: Request) -> Response:
        return await download(request, "csv")

    @app.get("/plan.json", include_in_schema=False)
    async def plan_json(request: Request) -> Response:
        return await download(request, "json")
