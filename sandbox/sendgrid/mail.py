"""SendGrid's Mail Send validation and what the sandbox keeps of accepted mail.

Validation reports every problem at once, as SendGrid does: a list of
``{"message", "field", "help"}`` answered with 400. Accepted mail is kept one message
per personalization, with the merged ``custom_args``, for ``GET /v3/messages``.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from sandbox.sendgrid.events import bounces
from sandbox.sendgrid.handlebars import RENDERER, render
from sandbox.sendgrid.templates import TemplateLibrary
from sandbox.store import Store
from sandbox.wire import iso, parse_query

#: Where SendGrid's error answers point for help.
HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"
#: Good enough to tell an address from a typo, as SendGrid's own check is.
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
#: Dynamic template ids (``d-…``) or legacy GUIDs.
TEMPLATE_ID = re.compile(r"^(d-[A-Za-z0-9_-]+|[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})$")
#: SendGrid's limits per request.
MAX_PERSONALIZATIONS = 1000
MAX_CATEGORIES = 10
_FROM_REQUIRED = (
    "The from object must be provided for every email send. It is an object that requires "
    'the email parameter, but may also contain a name parameter.  e.g. {"email" : '
    '"example@example.com"}  or {"email" : "example@example.com", "name" : "Example '
    'Recipient"}.'
)
_CONTENT_REQUIRED = (
    "Unless a valid template_id is provided, the content parameter is required. There must "
    "be at least one defined content block. We typically suggest both text/plain and "
    "text/html blocks are included, but only one block is required."
)
_SUBJECT_REQUIRED = (
    "The subject is required. You can get around this requirement if you use a template "
    "with a subject defined or if every personalization has a subject defined."
)


def error(message: str, field: str | None, *, anchor: str | None = None) -> dict[str, Any]:
    return {"message": message, "field": field, "help": f"{HELP}#{anchor}" if anchor else None}


def validate(payload: Any) -> list[dict[str, Any]]:
    if not isinstance(payload, Mapping):
        return [error("Bad Request", None)]
    errors = _personalization_errors(payload.get("personalizations"))
    errors += _from_errors(payload.get("from"))
    errors += _body_errors(payload)
    errors += _custom_args_errors(payload.get("custom_args"), "custom_args")
    categories = payload.get("categories") or []
    if not isinstance(categories, list) or len(categories) > MAX_CATEGORIES:
        errors.append(
            error(
                "Too many categories. You can only have 10 categories per request.",
                "categories",
                anchor="message.categories",
            )
        )
    return errors


def _personalization_errors(personalizations: Any) -> list[dict[str, Any]]:
    if not isinstance(personalizations, list) or not personalizations:
        anchor = "message.personalizations"
        return [
            error("You must have at least one personalization.", "personalizations", anchor=anchor)
        ]
    if len(personalizations) > MAX_PERSONALIZATIONS:
        message = (
            f"The personalization block is limited to 1000 personalizations per API "
            f"request. You have provided {len(personalizations)} personalizations. "
            "Please consider splitting this into multiple requests and resending your "
            "request."
        )
        return [error(message, "personalizations", anchor="message.personalizations")]
    errors = []
    for index, item in enumerate(personalizations):
        prefix = f"personalizations.{index}"
        recipients = item.get("to") if isinstance(item, Mapping) else None
        if not isinstance(recipients, list) or not recipients:
            message = "The to parameter is required for all personalization objects."
            errors.append(error(message, f"{prefix}.to", anchor="message.personalizations.to"))
            continue
        for position, recipient in enumerate(recipients):
            email = recipient.get("email") if isinstance(recipient, Mapping) else None
            if not isinstance(email, str) or not EMAIL.match(email):
                errors.append(
                    error(
                        "Does not contain a valid address.",
                        f"{prefix}.to.{position}.email",
                        anchor="message.personalizations.to",
                    )
                )
        errors += _custom_args_errors(item.get("custom_args"), f"{prefix}.custom_args")
    return errors


def _from_errors(sender: Any) -> list[dict[str, Any]]:
    email = sender.get("email") if isinstance(sender, Mapping) else None
    if not email:
        return [error(_FROM_REQUIRED, "from.email", anchor="message.from")]
    if not isinstance(email, str) or not EMAIL.match(email):
        return [
            error(
                "The from email does not contain a valid address.",
                "from.email",
                anchor="message.from",
            )
        ]
    return []


def _body_errors(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    template_id = payload.get("template_id")
    if template_id is not None:
        if isinstance(template_id, str) and TEMPLATE_ID.match(template_id):
            return []
        return [
            error(
                f"The template_id must be a valid GUID, you provided '{template_id}'.",
                "template_id",
                anchor="message.template_id",
            )
        ]
    errors = []
    content = payload.get("content")
    if not isinstance(content, list) or not any(
        isinstance(block, Mapping) and block.get("value") for block in content
    ):
        errors.append(error(_CONTENT_REQUIRED, "content", anchor="message.content"))
    personalizations = payload.get("personalizations") or []
    everyone_has_subject = (
        bool(personalizations)
        and isinstance(personalizations, list)
        and all(isinstance(item, Mapping) and item.get("subject") for item in personalizations)
    )
    if not payload.get("subject") and not everyone_has_subject:
        errors.append(error(_SUBJECT_REQUIRED, "subject", anchor="message.subject"))
    return errors


def _custom_args_errors(custom_args: Any, field: str) -> list[dict[str, Any]]:
    if custom_args is None:
        return []
    if not isinstance(custom_args, Mapping):
        return [
            error(
                "Invalid type. Expected: object, given: array.", field, anchor="message.custom_args"
            )
        ]
    return [
        error(
            f"Invalid type. Expected: string, given: {_json_type(value)}.",
            f"{field}.{name}",
            anchor="message.custom_args",
        )
        for name, value in custom_args.items()
        if not isinstance(value, str)
    ]


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "integer" if isinstance(value, int) else "number"
    return {dict: "object", list: "array", type(None): "null"}.get(type(value), "string")


class Outbox:
    """Mail SendGrid accepted, one message per personalization, oldest first."""

    def __init__(
        self, store: Store | None = None, *, templates: TemplateLibrary | None = None
    ) -> None:
        self._store = store or Store()
        #: Renders each dynamic-template mail, kept with it as ``rendered``.
        self._templates = templates
        self._forgotten = False
        self.messages: list[dict[str, Any]] = list(self._store.load("message").values())

    def accept(self, payload: Mapping[str, Any]) -> str:
        message_id = uuid.uuid4().hex[:22]
        stamp = iso(time.time())
        for index, item in enumerate(payload["personalizations"]):
            recipients = [r["email"] for r in item["to"]]
            self.messages.append(
                {
                    "msg_id": message_id if index == 0 else f"{message_id}.{index}",
                    "from_email": payload["from"]["email"],
                    "to_email": recipients[0],
                    "to_emails": recipients,
                    "subject": item.get("subject") or payload.get("subject"),
                    "template_id": payload.get("template_id"),
                    "dynamic_template_data": item.get("dynamic_template_data") or {},
                    "custom_args": {
                        **(payload.get("custom_args") or {}),
                        **(item.get("custom_args") or {}),
                    },
                    "categories": list(payload.get("categories") or []),
                    "status": "not_delivered" if bounces(recipients[0]) else "delivered",
                    "opens_count": 0,
                    "clicks_count": 0,
                    "last_event_time": stamp,
                }
            )
            self._render(self.messages[-1])
            self._store.put("message", self.messages[-1]["msg_id"], self.messages[-1])
        return message_id

    def _render(self, message: dict[str, Any]) -> None:
        """The mail as its recipient reads it, kept as ``rendered`` (subject, html,
        plain: its template's active version with its ``dynamic_template_data``) once
        the render thread is done; None until then."""
        template_id = message["template_id"]
        sections = self._templates.active_sections(template_id) if self._templates else None
        if template_id is None or sections is None:
            return
        message["rendered"] = None
        data = message["dynamic_template_data"]
        RENDERER.submit(lambda: render(sections, data), lambda out: self._rendered(message, out))

    def _rendered(self, message: dict[str, Any], rendered: dict[str, str]) -> None:
        if self._forgotten:  # reset since: this mail is gone
            return
        message["rendered"] = rendered
        message["subject"] = rendered["subject"]
        self._store.put("message", message["msg_id"], message)

    def forget(self) -> None:
        """The sandbox was reset: renders still under way are dropped."""
        self._forgotten = True

    def search(self, query: Mapping[str, str]) -> list[dict[str, Any]]:
        """``GET /v3/messages``: newest first, ``limit`` (default 1000) and an optional
        ``query`` such as ``unique_args['order_id']="42" AND to_email="a@b.c"``."""
        clauses = parse_query(query["query"]) if query.get("query") else []
        limit = max(1, min(100_000, int(query.get("limit") or 1000)))
        found = [m for m in reversed(self.messages) if all(_matches(m, c) for c in clauses)]
        return found[:limit]


def _matches(message: Mapping[str, Any], clause: tuple[str, str | None, str]) -> bool:
    field, key, value = clause
    if field in ("unique_args", "custom_args"):
        return message["custom_args"].get(key or "") == value
    return str(message.get(field)) == value
