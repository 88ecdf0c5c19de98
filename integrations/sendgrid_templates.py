"""The SendGrid dynamic templates of the customer e-mails.

They live in the repository as Handlebars files, ``integrations/templates/<kind>.hbs``,
one per notification kind, each with three sections (``{{!-- subject --}}``,
``{{!-- html --}}``, ``{{!-- plain --}}``). A section may include a shared piece,
``{{> lines}}`` for ``_lines.hbs`` (its section of the same name): the include is
spelled out before upload, as SendGrid's templates have no partials.

``fulfillment templates sync`` puts them in the SendGrid account through the Templates
API: each as the dynamic template named ``fulfillment_<kind>``, created when missing;
a new active version when the file differs from the active version; nothing otherwise.

The mailer finds a kind's template id by that name (``TemplateDirectory``): the
account's dynamic templates are listed once per process, and again when a name is
missing or SendGrid refuses an id (a template deleted and synced anew). Nothing is
copied into settings, and a template edited and synced is used by the next mail.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

from integrations.errors import TransientProviderError
from integrations.retry import DEFAULT_POLICY, RetryPolicy, call_provider

if TYPE_CHECKING:  # the sandbox reads the templates without loading the SDK
    import sendgrid

#: Where the templates are kept.
TEMPLATES_DIR = Path(__file__).with_name("templates")
#: A kind's template is named this prefix and the kind.
NAME_PREFIX = "fulfillment_"
#: The sections of a template file, in their order.
SECTIONS = ("subject", "html", "plain")
#: The most templates SendGrid lists per page.
PAGE_SIZE = 200
#: Provider label in metrics and errors.
PROVIDER = "sendgrid"
#: Seconds one Templates API request may take.
TIMEOUT = 10.0
_MARKER = re.compile(r"^\{\{!-- (subject|html|plain) --\}\}[ \t]*\n", re.MULTILINE)
_INCLUDE = re.compile(r"\{\{>\s*([a-z_]+)\s*\}\}\n?")


def template_name(kind: str) -> str:
    return f"{NAME_PREFIX}{kind}"


@dataclass(frozen=True, slots=True)
class TemplateSource:
    """One kind's template as the repository has it, includes spelled out."""

    kind: str
    subject: str
    html: str
    plain: str

    @property
    def name(self) -> str:
        return template_name(self.kind)

    @property
    def digest(self) -> str:
        text = "\0".join((self.subject, self.html, self.plain))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def version(self) -> dict[str, Any]:
        """The body of a new active version of this template."""
        return {
            "name": f"{self.kind} {self.digest}", "active": 1, "editor": "code",
            "subject": self.subject, "html_content": self.html,
            "plain_content": self.plain, "generate_plain_content": False,
        }  # fmt: skip

    def same_as(self, version: Mapping[str, Any]) -> bool:
        return (
            version.get("subject") == self.subject
            and version.get("html_content") == self.html
            and version.get("plain_content") == self.plain
        )


def load_templates(directory: Path = TEMPLATES_DIR) -> list[TemplateSource]:
    """Every ``<kind>.hbs`` of ``directory`` (files starting with ``_`` are includes)."""
    pieces = {path.stem[1:]: _sections(path) for path in directory.glob("_*.hbs")}
    sources = []
    for path in sorted(directory.glob("[!_]*.hbs")):
        sections = _sections(path)
        missing = [name for name in SECTIONS if name not in sections]
        if missing:
            raise ValueError(f"{path}: no {', '.join(missing)} section")
        spelled = {name: _spell_out(sections[name], name, pieces, path) for name in SECTIONS}
        sources.append(TemplateSource(path.stem, spelled["subject"].strip(),
                                      spelled["html"], spelled["plain"]))  # fmt: skip
    return sources


def _sections(path: Path) -> dict[str, str]:
    parts = _MARKER.split(path.read_text())
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def _spell_out(text: str, section: str, pieces: Mapping[str, Mapping[str, str]], path) -> str:
    def include(match: re.Match[str]) -> str:
        piece = pieces.get(match.group(1), {}).get(section)
        if piece is None:
            raise ValueError(f"{path}: no _{match.group(1)}.hbs with a {section} section")
        return piece

    return _INCLUDE.sub(include, text)


@dataclass(frozen=True, slots=True)
class Synced:
    """What ``sync_templates`` did to one template: created, updated or unchanged."""

    name: str
    template_id: str
    action: str
    version_id: str | None


def sync_templates(
    client: sendgrid.SendGridAPIClient,
    sources: list[TemplateSource],
    *,
    policy: RetryPolicy = DEFAULT_POLICY,
    timeout: float = TIMEOUT,
) -> list[Synced]:
    """Create each missing template; give a template whose active version differs from
    its file a new active version; leave the others. Running it again changes nothing."""
    api = _TemplatesApi(client, policy, timeout)
    existing = by_name(api.list_dynamic())
    results = []
    for source in sources:
        found = existing.get(source.name)
        if found is None:
            created = api.create(source.name)
            version = api.add_version(created["id"], source.version())
            results.append(Synced(source.name, created["id"], "created", version["id"]))
            continue
        active = next((v for v in found.get("versions") or [] if v.get("active") == 1), None)
        if active is not None and source.same_as(api.version(found["id"], active["id"])):
            results.append(Synced(source.name, found["id"], "unchanged", active["id"]))
            continue
        version = api.add_version(found["id"], source.version())
        results.append(Synced(source.name, found["id"], "updated", version["id"]))
    return results


def by_name(templates: list[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Templates by name; of several with one name, the first listed."""
    found: dict[str, Mapping[str, Any]] = {}
    for template in templates:
        found.setdefault(template["name"], template)
    return found


class _TemplatesApi:
    """The Templates API calls, through the SDK's fluent client."""

    def __init__(
        self, client: sendgrid.SendGridAPIClient, policy: RetryPolicy, timeout: float
    ) -> None:
        self._templates = client.client._("templates")
        self._templates.timeout = timeout  # the paths built from it take it along
        self._policy = policy

    def list_dynamic(self) -> list[dict[str, Any]]:
        return [template for page in self._pages() for template in page]

    def _pages(self) -> Iterator[list[dict[str, Any]]]:
        query: dict[str, Any] = {"generations": "dynamic", "page_size": PAGE_SIZE}
        while True:
            body = self._call("templates_list", lambda q=query: self._templates.get(query_params=q))
            yield body.get("result") or body.get("templates") or []
            token = _page_token((body.get("_metadata") or {}).get("next"))
            if token is None:
                return
            query = {**query, "page_token": token}

    def create(self, name: str) -> dict[str, Any]:
        body = {"name": name, "generation": "dynamic"}
        return self._call("template_create", lambda: self._templates.post(request_body=body))

    def version(self, template_id: str, version_id: str) -> dict[str, Any]:
        versions = self._templates._(template_id).versions
        return self._call("template_version_get", lambda: versions._(version_id).get())

    def add_version(self, template_id: str, body: dict[str, Any]) -> dict[str, Any]:
        versions = self._templates._(template_id).versions
        body = {**body, "template_id": template_id}
        return self._call("template_version_create", lambda: versions.post(request_body=body))

    def _call(self, operation: str, fn: Callable[[], Any]) -> dict[str, Any]:
        response = call_provider(fn, provider=PROVIDER, operation=operation, policy=self._policy)
        return response.to_dict or {}


def _page_token(next_url: str | None) -> str | None:
    if not next_url:
        return None
    tokens = parse_qs(urlparse(next_url).query).get("page_token")
    return tokens[0] if tokens else None


class TemplateDirectory:
    """Template ids by kind, found by name among the account's dynamic templates."""

    def __init__(
        self,
        client: sendgrid.SendGridAPIClient,
        *,
        policy: RetryPolicy = DEFAULT_POLICY,
        timeout: float = TIMEOUT,
        relist_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = _TemplatesApi(client, policy, timeout)
        self._relist_after = relist_after
        self._clock = clock
        self._lock = threading.Lock()
        self._ids: dict[str, str] | None = None
        self._listed_at = float("-inf")

    def id_for(self, kind: str) -> str:
        """The id of the template named for ``kind``; a ``TransientProviderError`` when
        the account has none (the mail waits for ``fulfillment templates sync``)."""
        name = template_name(kind)
        ids = self._ids
        if self._must_list(ids, name):
            with self._lock:  # the threads of a process list once between them
                ids = self._ids
                if self._must_list(ids, name):
                    ids = self._list()
        if name not in ids:
            raise TransientProviderError(
                f"no dynamic template named {name!r}: run `fulfillment templates sync`",
                provider=PROVIDER, operation="send_mail", code="template_missing",
            )  # fmt: skip
        return ids[name]

    def forget(self) -> None:
        """List again before the next mail (SendGrid refused an id)."""
        self._ids = None

    def _must_list(self, ids: dict[str, str] | None, name: str) -> bool:
        stale = self._clock() - self._listed_at > self._relist_after
        return ids is None or (name not in ids and stale)

    def _list(self) -> dict[str, str]:
        ids = {name: t["id"] for name, t in by_name(self._api.list_dynamic()).items()}
        self._ids, self._listed_at = ids, self._clock()
        return ids
