"""SendGrid's transactional templates in the sandbox: the Templates API (templates and
their versions, kept in the store) and the rendering of a dynamic-template mail with
the template's active version, through a real Handlebars implementation (pybars3).

Rendering runs on a thread of its own, after the mail was accepted
(``handlebars.py``). The sandbox starts with the repository's templates installed, as if ``fulfillment
templates sync`` had run against it (``SandboxConfig.install_templates``; a reset
installs them again), the way it starts with a Stripe webhook endpoint registered.
Those get ids derived from their names, so a sandbox that kept nothing across a restart
gives them the same ids again; templates created through the API get random ones.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Mapping
from typing import Any

from integrations.sendgrid_templates import TemplateSource
from sandbox.sendgrid.handlebars import RENDERER
from sandbox.store import Store

#: The largest page ``GET /v3/templates`` answers.
MAX_PAGE_SIZE = 200
#: The generations SendGrid knows.
GENERATIONS = ("legacy", "dynamic")
#: What a version is made of, beside its id and template.
VERSION_FIELDS = ("name", "subject", "html_content", "plain_content", "generate_plain_content",
                  "editor", "test_data")  # fmt: skip
#: What a template listing shows of each version (no content, as SendGrid's).
SUMMARY_FIELDS = ("id", "template_id", "active", "name", "subject", "updated_at",
                  "generate_plain_content", "editor", "thumbnail_url")  # fmt: skip


class TemplateError(Exception):
    """A request SendGrid would refuse: ``status`` and ``{"field", "message"}`` errors."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.errors = [{"field": field, "message": message}]


def installed_id(name: str) -> str:
    """The id the sandbox gives the installed template named ``name``."""
    return "d-" + hashlib.sha256(name.encode()).hexdigest()[:32]


def _stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())


class TemplateLibrary:
    """Templates by id, each with its versions (content included), oldest first."""

    def __init__(self, store: Store | None = None) -> None:
        self._store = store or Store()
        self.templates: dict[str, dict[str, Any]] = self._store.load("template")

    # --- templates ---------------------------------------------------------------------

    def create(self, body: Mapping[str, Any], *, template_id: str | None = None) -> dict:
        name = body.get("name")
        if not isinstance(name, str) or not 0 < len(name) <= 100:
            raise TemplateError(400, "name is required and at most 100 characters", "name")
        generation = body.get("generation", "legacy")
        if generation not in GENERATIONS:
            raise TemplateError(400, "generation must be legacy or dynamic", "generation")
        prefix = "d-" if generation == "dynamic" else ""
        template_id = template_id or prefix + uuid.uuid4().hex
        template = {"id": template_id, "name": name, "generation": generation,
                    "updated_at": _stamp(), "versions": []}  # fmt: skip
        self.templates[template_id] = template
        self._keep(template)
        return template

    def page(self, query: Mapping[str, str]) -> dict[str, Any]:
        """``GET /v3/templates?generations=dynamic&page_size=N[&page_token=T]``."""
        try:
            size = int(query.get("page_size", ""))
        except ValueError:
            size = 0
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise TemplateError(400, "page_size must be between 1 and 200", "page_size")
        wanted = set((query.get("generations") or "legacy").split(","))
        found = [t for t in self.templates.values() if t["generation"] in wanted]
        start = (
            int(query.get("page_token") or 0) if (query.get("page_token") or "").isdigit() else 0
        )
        page = found[start : start + size]
        more = start + size < len(found)
        return {
            "result": [self.summary(t) for t in page],
            "_metadata": {"count": len(found),
                          **({"next": f"/v3/templates?page_token={start + size}"} if more else {})},
        }  # fmt: skip

    def get(self, template_id: str) -> dict[str, Any]:
        template = self.templates.get(template_id)
        if template is None:
            raise TemplateError(404, "resource not found", "template_id")
        return template

    def rename(self, template_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        template = self.get(template_id)
        name = body.get("name")
        if not isinstance(name, str) or not 0 < len(name) <= 100:
            raise TemplateError(400, "name is required and at most 100 characters", "name")
        template.update(name=name, updated_at=_stamp())
        self._keep(template)
        return template

    def delete(self, template_id: str) -> None:
        self.get(template_id)
        del self.templates[template_id]
        self._store.delete("template", template_id)

    @staticmethod
    def summary(template: Mapping[str, Any]) -> dict[str, Any]:
        versions = [{k: v.get(k) for k in SUMMARY_FIELDS} for v in template["versions"]]
        return {**template, "versions": versions}

    # --- versions ----------------------------------------------------------------------

    def add_version(self, template_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        template = self.get(template_id)
        version = {"id": str(uuid.uuid4()), "template_id": template_id, "active": 0,
                   "editor": "code", "generate_plain_content": True, "thumbnail_url": ""}  # fmt: skip
        self._apply(version, {"name": "Untitled Version", **body})
        template["versions"].append(version)
        if body.get("active", 0) == 1 or len(template["versions"]) == 1:
            self._activate(template, version)
        self._keep(template)
        return version

    def version(self, template_id: str, version_id: str) -> dict[str, Any]:
        for version in self.get(template_id)["versions"]:
            if version["id"] == version_id:
                return version
        raise TemplateError(404, "resource not found", "version_id")

    def update_version(self, template_id: str, version_id: str, body: Mapping[str, Any]) -> dict:
        version = self.version(template_id, version_id)
        self._apply(version, body)
        template = self.get(template_id)
        if body.get("active") == 1:
            self._activate(template, version)
        self._keep(template)
        return version

    def activate(self, template_id: str, version_id: str) -> dict[str, Any]:
        template, version = self.get(template_id), self.version(template_id, version_id)
        self._activate(template, version)
        self._keep(template)
        return version

    def delete_version(self, template_id: str, version_id: str) -> None:
        template, version = self.get(template_id), self.version(template_id, version_id)
        template["versions"].remove(version)
        self._keep(template)

    def _apply(self, version: dict[str, Any], body: Mapping[str, Any]) -> None:
        changes = {k: body[k] for k in VERSION_FIELDS if k in body}
        for field in ("subject", "html_content", "plain_content"):
            value = changes.get(field)
            if value is not None and not isinstance(value, str):
                raise TemplateError(400, f"{field} must be a string", field)
        if "name" in changes and not (isinstance(changes["name"], str) and changes["name"]):
            raise TemplateError(400, "name is required", "name")
        version.update(changes, updated_at=_stamp())

    @staticmethod
    def _activate(template: dict[str, Any], chosen: dict[str, Any]) -> None:
        for version in template["versions"]:
            version["active"] = 1 if version is chosen else 0
        template["updated_at"] = _stamp()

    # --- rendering ---------------------------------------------------------------------

    def knows(self, template_id: str) -> bool:
        return template_id in self.templates

    def active_sections(self, template_id: str) -> dict[str, str] | None:
        """The subject, html and plain Handlebars of the template's active version;
        None for a template without one."""
        template = self.templates.get(template_id)
        active = next((v for v in (template or {}).get("versions", []) if v["active"]), None)
        if active is None:
            return None
        return {"subject": active.get("subject") or "", "html": active.get("html_content") or "",
                "plain": active.get("plain_content") or ""}  # fmt: skip

    # --- the repository's templates ----------------------------------------------------

    def install(self, sources: list[TemplateSource]) -> None:
        """Each source as a dynamic template of its name: created when missing, given a
        new active version when it differs; what ``fulfillment templates sync`` does."""
        by_name = {}
        for template in self.templates.values():
            by_name.setdefault(template["name"], template)
        for source in sources:
            template = by_name.get(source.name)
            if template is None:
                template = self.create({"name": source.name, "generation": "dynamic"},
                                       template_id=installed_id(source.name))  # fmt: skip
            active = next((v for v in template["versions"] if v["active"]), None)
            if active is None or not source.same_as(active):
                self.add_version(template["id"], source.version())
        RENDERER.warm_up(text for s in sources for text in (s.subject, s.html, s.plain))

    def _keep(self, template: dict[str, Any]) -> None:
        self._store.put("template", template["id"], template)
