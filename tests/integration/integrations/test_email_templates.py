"""The e-mail templates: ``fulfillment templates sync`` puts the repository's Handlebars
files into SendGrid (the sandbox, through the SDK) once, and the mailer finds them by
name; the sandbox renders each mail with the template's active version."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import sendgrid
from click.testing import CliRunner, Result
from python_http_client.exceptions import BadRequestsError

from cli.main import group
from integrations.errors import TransientProviderError
from integrations.sendgrid_gateway import SendGridMailer, build_sendgrid_mailer
from integrations.sendgrid_templates import TEMPLATES_DIR, load_templates, template_name
from sandbox import SandboxConfig, SandboxThread
from tests.support.sandbox import (
    FAST_RETRIES,
    TEST_TIMEOUT,
    RunningSandbox,
    running_sandbox,
    wait_for,
)

AUTH = {"Authorization": "Bearer SG.support"}
KINDS = [source.kind for source in load_templates()]


@pytest.fixture(scope="module")
def empty() -> Iterator[RunningSandbox]:
    with running_sandbox(install_templates=False) as running:
        yield running


@pytest.fixture
def sandbox(empty: RunningSandbox) -> RunningSandbox:
    empty.reset()  # a sandbox started without templates is reset to none
    return empty


def sync(sandbox: RunningSandbox, *args: str) -> Result:
    env = {"SENDGRID_HOST": f"{sandbox.url}/sendgrid"}  # the development key
    result = CliRunner().invoke(group, ["templates", "sync", *args], env=env)
    assert result.exit_code == 0, result.output
    return result


def actions(result: Result) -> dict[str, str]:
    """What the sync printed for each template: created, updated or unchanged."""
    return {line.split()[1]: line.split()[0] for line in result.output.splitlines()
            if line.split()[0] in ("created", "updated", "unchanged")}  # fmt: skip


def templates(sandbox: RunningSandbox) -> dict[str, dict]:
    """Each dynamic template by name, with its versions' content."""
    listing = requests.get(f"{sandbox.url}/sendgrid/v3/templates", headers=AUTH, timeout=5,
                           params={"generations": "dynamic", "page_size": 200})  # fmt: skip
    listing.raise_for_status()
    return {t["name"]: _get(sandbox, f"/v3/templates/{t['id']}") for t in listing.json()["result"]}


def _get(sandbox: RunningSandbox, path: str) -> dict:
    response = requests.get(f"{sandbox.url}/sendgrid{path}", headers=AUTH, timeout=5)
    response.raise_for_status()
    return response.json()


def mailer(sandbox: RunningSandbox) -> SendGridMailer:
    return build_sendgrid_mailer(sandbox.settings(), timeout=TEST_TIMEOUT, policy=FAST_RETRIES)


def rendered(sandbox: RunningSandbox, user_id: str) -> dict:
    def find() -> dict | None:
        mine = [m for m in sandbox.messages() if m["custom_args"].get("user_id") == user_id]
        return mine[0] if mine and mine[0].get("rendered") else None

    return wait_for(find, what=f"the mail to {user_id} rendered")


def test_sync_creates_every_template_then_a_second_run_changes_nothing(sandbox):
    # When the templates are synced into an account that has none
    first = sync(sandbox)

    # Then one dynamic template per kind exists, its one version active and as the file
    assert actions(first) == {template_name(kind): "created" for kind in KINDS}
    found = templates(sandbox)
    assert set(found) == {template_name(kind) for kind in KINDS}
    for source in load_templates():
        (version,) = found[source.name]["versions"]
        assert version["active"] == 1 and source.same_as(version)

    # When it runs again
    second = sync(sandbox)

    # Then nothing changes
    assert actions(second) == {template_name(kind): "unchanged" for kind in KINDS}
    assert f"{len(KINDS)} templates, 0 changed" in second.output
    assert templates(sandbox) == found


def test_a_changed_template_file_gets_a_new_active_version(sandbox, tmp_path: Path):
    # Given synced templates, and then the shipped mail's subject edited
    sync(sandbox)
    edited = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, edited)
    shipped = edited / "shipped.hbs"
    shipped.write_text(shipped.read_text().replace("is on its way", "has left the warehouse"))

    # When the edited files are synced
    result = sync(sandbox, "--dir", str(edited))

    # Then the shipped template alone has a new version, active, with the new subject
    assert actions(result) == {template_name(kind): "updated" if kind == "shipped" else
                               "unchanged" for kind in KINDS}  # fmt: skip
    versions = templates(sandbox)[template_name("shipped")]["versions"]
    assert [v["active"] for v in versions] == [0, 1]
    assert versions[1]["subject"] == "Order {{{order_number}}} has left the warehouse"

    # and the next mail is rendered with it
    mailer(sandbox).send("shipped", to_email="ada@example.com", order_id="o-1", user_id="u-1",
                         data={"order_number": "K3F9-2QXA"})  # fmt: skip
    assert rendered(sandbox, "u-1")["subject"] == "Order K3F9-2QXA has left the warehouse"


def test_the_mailer_finds_templates_by_name_also_after_one_is_created_anew(sandbox):
    # Given synced templates and a mailer that has sent with them
    sync(sandbox)
    mail = mailer(sandbox)
    mail.send("welcome", to_email="ada@example.com", user_id="u-1", data={"first_name": "Ada"})
    first_id = templates(sandbox)[template_name("welcome")]["id"]
    assert rendered(sandbox, "u-1")["template_id"] == first_id
    assert rendered(sandbox, "u-1")["rendered"]["subject"] == "Welcome, Ada"

    # When the welcome template is deleted and synced again (it gets another id)
    deleted = requests.delete(f"{sandbox.url}/sendgrid/v3/templates/{first_id}", headers=AUTH,
                              timeout=5)  # fmt: skip
    assert deleted.status_code == 204
    assert actions(sync(sandbox))[template_name("welcome")] == "created"

    # Then the same mailer's next welcome uses the new template, sent once
    mail.send("welcome", to_email="grace@example.com", user_id="u-2", data={"first_name": "Grace"})
    second = rendered(sandbox, "u-2")
    assert second["template_id"] == templates(sandbox)[template_name("welcome")]["id"] != first_id
    assert second["rendered"]["subject"] == "Welcome, Grace"
    assert len(sandbox.messages()) == 2


def test_a_mail_whose_template_was_never_synced_waits_as_a_transient_error(sandbox):
    # When a mail is sent before any template was synced
    with pytest.raises(TransientProviderError) as raised:
        mailer(sandbox).send("shipped", to_email="ada@example.com", order_id="o-1")

    # Then it is left for a retry, and nothing was sent
    assert raised.value.code == "template_missing"
    assert "templates sync" in raised.value.message
    assert sandbox.messages() == []


def test_the_sandbox_keeps_templates_and_versions_as_sendgrid_does(tmp_path: Path):
    config = SandboxConfig(state_path=str(tmp_path / "sandbox.sqlite3"), install_templates=False)
    body = {"name": "v1", "subject": "Hi {{name}}", "html_content": "<p>{{name}}</p>",
            "plain_content": "{{name}}", "active": 1}  # fmt: skip

    # Given a dynamic template with two versions, the second active, then the first again
    with SandboxThread(config) as server:
        api = sendgrid.SendGridAPIClient("SG.x", host=f"{server.url}/sendgrid").client.templates
        legacy = api.post(request_body={"name": "old", "generation": "legacy"}).to_dict
        made = api.post(request_body={"name": "greeting", "generation": "dynamic"}).to_dict
        versions = api._(made["id"]).versions
        first = versions.post(request_body=body).to_dict
        second = versions.post(request_body={**body, "name": "v2", "subject": "Hello {{name}}"})
        second = second.to_dict
        versions._(first["id"]).patch(request_body={"subject": "Hey {{name}}"})
        versions._(first["id"]).activate.post()

    # When the sandbox is restarted on the same file
    with SandboxThread(config) as server:
        client = sendgrid.SendGridAPIClient("SG.x", host=f"{server.url}/sendgrid")
        api = client.client.templates

        # Then the listing filters by generation and shows versions without content
        dynamic = api.get(query_params={"generations": "dynamic", "page_size": 10}).to_dict
        assert [t["id"] for t in dynamic["result"]] == [made["id"]]
        assert "html_content" not in dynamic["result"][0]["versions"][0]
        both = api.get(query_params={"generations": "legacy,dynamic", "page_size": 1}).to_dict
        assert [t["id"] for t in both["result"]] == [legacy["id"]] and "next" in both["_metadata"]
        with pytest.raises(BadRequestsError):
            api.get(query_params={"generations": "dynamic"})  # page_size is required

        # and the first version, updated and activated again, is the one mail renders with
        kept = api._(made["id"]).get().to_dict
        assert [(v["id"], v["active"]) for v in kept["versions"]] == [(first["id"], 1),
                                                                       (second["id"], 0)]  # fmt: skip
        mail = {"personalizations": [{"to": [{"email": "ada@example.com"}],
                                      "dynamic_template_data": {"name": "Ada"}}],
                "from": {"email": "shop@example.com"}, "template_id": made["id"]}  # fmt: skip
        assert client.send(mail).status_code == 202
        sandbox = RunningSandbox(server)
        message = wait_for(lambda: sandbox.messages()[0].get("rendered"), what="the mail rendered")
        assert message == {"subject": "Hey Ada", "html": "<p>Ada</p>", "plain": "Ada"}


def test_a_mailers_threads_list_the_templates_once_between_them(sandbox):
    # Given synced templates and a fresh mailer
    sync(sandbox)
    mail = mailer(sandbox)
    listed_before = len(template_listings(sandbox))

    # When eight threads send their first mails at once
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: mail.send("welcome", to_email="ada@example.com",
                                          user_id=f"u-{i}"), range(8)))  # fmt: skip

    # Then the account's templates were listed once, and every mail went out
    assert len(template_listings(sandbox)) == listed_before + 1
    assert len(sandbox.messages()) == 8


def template_listings(sandbox: RunningSandbox) -> list[dict]:
    return [r for r in sandbox.requests("sendgrid")
            if r["method"] == "GET" and r["path"] == "/sendgrid/v3/templates"]  # fmt: skip
