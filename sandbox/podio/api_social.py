"""OAuth token endpoints, tasks, comments and hooks over HTTP (reference §1, §7, §8, §9)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.podio.errors import PodioError
from sandbox.podio.http import Call, Reply, SlashRoute, api_route, error_response
from sandbox.podio.service import PodioService
from sandbox.podio.tasks import as_int


class SocialApi:
    """Handlers for /oauth, /task, /comment and /hook."""

    def __init__(self, service: PodioService) -> None:
        self.s = service

    def routes(self) -> list[Route]:
        s, r = self.s, api_route
        return [
            SlashRoute("/oauth/token", self._token_endpoint(json_body=False), ["POST"]),
            SlashRoute("/oauth/token/v2", self._token_endpoint(json_body=True), ["POST"]),
            r(s, "POST", "/task/", self.create_task),
            r(s, "GET", "/task/", self.list_tasks),
            r(s, "GET", "/task/{task_id:int}", self.get_task),
            r(s, "PUT", "/task/{task_id:int}", self.update_task),
            r(s, "DELETE", "/task/{task_id:int}", self.delete_task),
            r(s, "POST", "/task/{task_id:int}/complete", self.complete_task),
            r(s, "POST", "/task/{task_id:int}/incomplete", self.incomplete_task),
            r(s, "POST", "/task/{ref_type}/{ref_id:int}/", self.create_task),
            r(s, "GET", "/task/{ref_type}/{ref_id:int}/", self.tasks_on),
            r(s, "POST", "/comment/{ref_type}/{ref_id:int}/", self.add_comment),
            r(s, "GET", "/comment/{ref_type}/{ref_id:int}/", self.comments_on),
            r(s, "GET", "/comment/{comment_id:int}", self.get_comment),
            r(s, "DELETE", "/comment/{comment_id:int}", self.delete_comment),
            r(s, "POST", "/hook/{ref_type}/{ref_id:int}/", self.create_hook),
            r(s, "GET", "/hook/{ref_type}/{ref_id:int}/", self.list_hooks),
            r(s, "POST", "/hook/{hook_id:int}/verify/request", self.verify_request),
            r(s, "POST", "/hook/{hook_id:int}/verify/validate", self.verify_validate),
            r(s, "DELETE", "/hook/{hook_id:int}", self.delete_hook),
        ]

    # --- OAuth (no bearer token, no rate limit) -----------------------------------------

    def _token_endpoint(self, json_body: bool) -> Any:
        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            try:
                params = _token_params(raw, json_body)
                with self.s.lock:
                    return JSONResponse(self.s.oauth.grant(params, self.s.now()))
            except PodioError as exc:
                return error_response(request, exc, {})
        return endpoint

    # --- tasks --------------------------------------------------------------------------

    def _task_json(self, call: Call, task: Any) -> dict[str, Any]:
        return self.s.tasks.json(task, self.s.view(call.principal).tz)

    def create_task(self, call: Call) -> Reply:
        ref_type = call.request.path_params.get("ref_type")
        ref_id = call.request.path_params.get("ref_id")
        call.flag("silent", False)
        tasks = self.s.create_tasks(call.json(), ref_type, ref_id, call.principal,
                                    hook=call.flag("hook", True))
        bodies = [self._task_json(call, t) for t in tasks]
        return 200, bodies[0] if len(bodies) == 1 else bodies

    def list_tasks(self, call: Call) -> Reply:
        params = dict(call.request.query_params)
        return 200, [self._task_json(call, t) for t in self.s.tasks.query(params, self.s.task_app)
                     if self.s.task_visible(t, call.principal)]

    def tasks_on(self, call: Call) -> Reply:
        ref = f"{call.arg('ref_type')}:{call.arg('ref_id')}"
        if call.arg("ref_type") == "item":
            self.s.item(call.arg("ref_id"), call.principal)
        params = {**dict(call.request.query_params), "reference": ref}
        return 200, [self._task_json(call, t) for t in self.s.tasks.query(params)
                     if self.s.task_visible(t, call.principal)]

    def get_task(self, call: Call) -> Reply:
        return 200, self._task_json(call, self.s.task(call.arg("task_id"), call.principal))

    def update_task(self, call: Call) -> Reply:
        task = self.s.task(call.arg("task_id"), call.principal)
        body = call.json()
        if not isinstance(body, dict):
            raise PodioError(400, "The task update must be a JSON object")
        if "text" in body:
            if not isinstance(body["text"], str) or not body["text"].strip():
                raise PodioError(400, "'text' cannot be empty")
            task.text = body["text"].strip()
        if "description" in body:
            task.description = str(body["description"] or "")
        if {"due_date", "due_on"} & body.keys():
            task.due = self.s.tasks.parse_due(body, self.s.view(call.principal).tz)
        if "external_id" in body:
            task.external_id = body["external_id"]
        return 204, None

    def delete_task(self, call: Call) -> Reply:
        self.s.task(call.arg("task_id"), call.principal).deleted = True
        return 204, None

    def complete_task(self, call: Call) -> Reply:
        task = self.s.task(call.arg("task_id"), call.principal)
        self.s.set_task_status(task, True, call.principal, hook=call.flag("hook", True))
        return 204, None

    def incomplete_task(self, call: Call) -> Reply:
        task = self.s.task(call.arg("task_id"), call.principal)
        self.s.set_task_status(task, False, call.principal, hook=call.flag("hook", True))
        return 204, None

    # --- comments -----------------------------------------------------------------------

    def add_comment(self, call: Call) -> Reply:
        call.flag("silent", False)
        comment = self.s.add_comment(call.arg("ref_type"), call.arg("ref_id"), call.json(),
                                     call.principal, hook=call.flag("hook", True))
        return 200, self.s.comments.json(comment)

    def comments_on(self, call: Call) -> Reply:
        ref_type, ref_id = call.arg("ref_type"), call.arg("ref_id")
        self.s.comment_target(ref_type, ref_id, call.principal)
        comments = self.s.comments.on(ref_type, ref_id)
        offset, limit = as_int(call.query("offset") or 0), as_int(call.query("limit") or 100)
        return 200, [self.s.comments.json(c) for c in comments[offset:offset + limit]]

    def get_comment(self, call: Call) -> Reply:
        comment = self.s.comments.get(call.arg("comment_id"))
        self.s.comment_target(comment.ref_type, comment.ref_id, call.principal)
        return 200, self.s.comments.json(comment)

    def delete_comment(self, call: Call) -> Reply:
        comment = self.s.comments.get(call.arg("comment_id"))
        self.s.delete_comment(comment, call.principal, hook=call.flag("hook", True))
        return 204, None

    # --- hooks --------------------------------------------------------------------------

    def _check_hook_ref(self, call: Call, ref_type: str, ref_id: int) -> None:
        if ref_type == "app":
            self.s.check_app_access(call.principal, ref_id)
        elif ref_type == "app_field":
            app_id = self.s.hooks.field_app(ref_id)
            if app_id is not None:
                self.s.check_app_access(call.principal, app_id)
        elif call.principal.kind == "app":
            raise PodioError(403, "An app token cannot manage space hooks", error="forbidden")

    def create_hook(self, call: Call) -> Reply:
        ref_type, ref_id = call.arg("ref_type"), call.arg("ref_id")
        self._check_hook_ref(call, ref_type, ref_id)
        hook = self.s.hooks.create(ref_type, ref_id, call.json(), call.principal.actor,
                                   call.now)
        return 200, {"hook_id": hook.hook_id}

    def list_hooks(self, call: Call) -> Reply:
        ref_type, ref_id = call.arg("ref_type"), call.arg("ref_id")
        self._check_hook_ref(call, ref_type, ref_id)
        return 200, [self.s.hooks.json(h) for h in self.s.hooks.on(ref_type, ref_id)]

    def _hook(self, call: Call) -> Any:
        hook = self.s.hooks.get(call.arg("hook_id"))
        self._check_hook_ref(call, hook.ref_type, hook.ref_id)
        return hook

    def verify_request(self, call: Call) -> Reply:
        self.s.hooks.request_verification(self._hook(call))
        return 204, None

    def verify_validate(self, call: Call) -> Reply:
        self.s.hooks.validate(self._hook(call), call.json())
        return 204, None

    def delete_hook(self, call: Call) -> Reply:
        self._hook(call).deleted = True
        return 204, None


def _token_params(raw: bytes, json_body: bool) -> dict[str, Any]:
    """Token request parameters: form-encoded (legacy endpoint) or JSON (v2)."""
    text = raw.decode("utf-8", errors="replace")
    if json_body:
        try:
            params = json.loads(text) if text.strip() else {}
        except ValueError:
            raise PodioError(400, "POST /oauth/token/v2 takes a JSON body",
                             error="invalid_request") from None
        if not isinstance(params, dict):
            raise PodioError(400, "The token request must be a JSON object",
                             error="invalid_request")
        return params
    return dict(parse_qsl(text, keep_blank_values=True))
