"""Customer mail through the official SendGrid SDK, as dynamic-template sends.

SendGrid has no idempotency keys; each mail carries its de-duplication key
(``order_<id>_<kind>`` or ``user_<id>_welcome``) in ``custom_args`` so that a
notification step can record it and the Email Activity feed can be searched by it.
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

import python_http_client
import sendgrid
import urllib3

from fulfillment.notifications import dedup_key as notification_key
from fulfillment.settings import Settings
from integrations.errors import PermanentProviderError, header
from integrations.ports import NotificationKind, SentMail
from integrations.retry import RetryPolicy, call_provider
from integrations.sendgrid_templates import TemplateDirectory

#: Mail has no idempotency key: a timed-out send may have been delivered, so it is not
#: resent in-call (the notification step decides; see pipelines/mail/notify.py).
MAIL_POLICY = RetryPolicy(retry_ambiguous=False)

#: Provider label in metrics and errors.
PROVIDER = "sendgrid"
#: Seconds one HTTP request to SendGrid may take.
DEFAULT_TIMEOUT = 10.0
#: SendGrid's own host, used when SENDGRID_HOST is unset.
SENDGRID_API_HOST = "https://api.sendgrid.com"
#: The sender every mail comes from unless told otherwise.
DEFAULT_SENDER = ("orders@fulfillment.example.com", "Fulfillment")


def notification_dedup_key(
    kind: NotificationKind, *, order_id: str | None, user_id: str | None
) -> str:
    """The key SendGrid's ``custom_args`` carry: the notification row's own key."""
    if order_id is None and user_id is None:
        raise ValueError("a notification needs an order_id or a user_id")
    return notification_key(kind.value, order_id=order_id, user_id=user_id)


class SendGridMailer:
    """The ``Mailer`` port on SendGrid's v3 Mail Send."""

    def __init__(
        self,
        client: sendgrid.SendGridAPIClient,
        *,
        templates: Mapping[NotificationKind, str] | None = None,
        directory: TemplateDirectory | None = None,
        sender: tuple[str, str] = DEFAULT_SENDER,
        timeout: float = DEFAULT_TIMEOUT,
        policy: RetryPolicy = MAIL_POLICY,
    ) -> None:
        """``templates``: template ids to use as given; every other kind's is found by
        its name (``integrations.sendgrid_templates``)."""
        self._client = client
        #: The Mail Send endpoint's client, and one urllib opener for every send: the
        #: SDK's ``post`` builds both afresh per mail (a quarter of its CPU), then makes
        #: the same call, ``_make_request``, which maps HTTP errors to its exceptions.
        self._mail_send = client.client.mail.send
        self._opener = KeptAliveOpener()
        self._templates = dict(templates or {})
        self._directory = directory or TemplateDirectory(client, timeout=timeout)
        self._sender = sender
        self._timeout = timeout
        self._policy = policy

    def send(
        self,
        kind: NotificationKind | str,
        *,
        to_email: str,
        to_name: str | None = None,
        order_id: str | None = None,
        user_id: str | None = None,
        data: Mapping[str, Any] | None = None,
        dedup_key: str | None = None,
    ) -> SentMail:
        kind = NotificationKind(kind)
        key = dedup_key or notification_dedup_key(kind, order_id=order_id, user_id=user_id)
        ids = {"order_id": order_id, "user_id": user_id}
        payload = self.build_payload(
            kind,
            template_id=self._template_id(kind),
            to_email=to_email,
            to_name=to_name,
            custom_args={"kind": kind.value, "dedup_key": key, **ids},
            data=data or {},
        )
        try:
            response = self._send_payload(payload)
        except PermanentProviderError as exc:
            if not self._stale_template(kind, exc, payload["template_id"]):
                raise
            payload["template_id"] = self._directory.id_for(kind.value)
            response = self._send_payload(payload)
        return SentMail(
            message_id=header(response.headers, "X-Message-Id"), kind=kind, dedup_key=key
        )

    def _template_id(self, kind: NotificationKind) -> str:
        return self._templates.get(kind) or self._directory.id_for(kind.value)

    def _stale_template(
        self, kind: NotificationKind, exc: PermanentProviderError, used: str
    ) -> bool:
        """SendGrid refused the id found by name (the template was deleted and synced
        anew): nothing was sent, and a fresh listing may have another id for it."""
        if exc.code != "template_id" or kind in self._templates:
            return False
        self._directory.forget()
        return self._directory.id_for(kind.value) != used

    def _send_payload(self, payload: dict[str, Any]) -> python_http_client.client.Response:
        return call_provider(
            lambda: self._post(payload),
            provider=PROVIDER,
            operation="send_mail",
            policy=self._policy,
        )

    def _post(self, payload: dict[str, Any]) -> python_http_client.client.Response:
        endpoint = self._mail_send
        request = urllib.request.Request(
            endpoint._build_url(None),
            data=json.dumps(payload).encode(),
            headers={**endpoint.request_headers, "Content-Type": "application/json"},
            method="POST",
        )
        return python_http_client.client.Response(
            endpoint._make_request(self._opener, request, timeout=self._timeout)
        )

    def build_payload(
        self,
        kind: NotificationKind,
        *,
        template_id: str,
        to_email: str,
        to_name: str | None,
        custom_args: Mapping[str, object],
        data: Mapping[str, Any],
    ) -> dict[str, Any]:
        """The Mail Send body, as SendGrid documents it for dynamic templates.
        ``custom_args`` values must be strings; None values are left out."""
        recipient = {"email": to_email, **({"name": to_name} if to_name else {})}
        sender_email, sender_name = self._sender
        return {
            "from": {"email": sender_email, "name": sender_name},
            "personalizations": [{"to": [recipient], "dynamic_template_data": dict(data)}],
            "template_id": template_id,
            "categories": [kind.value],
            "custom_args": {
                name: str(value) for name, value in custom_args.items() if value is not None
            },
        }


class KeptAliveOpener:
    """What the SDK asks of urllib's opener (``open(request, timeout=...)``), over one
    urllib3 pool of kept-alive connections: urllib opens a connection for every mail,
    and its connect and teardown were a third of a send's CPU (and the server's accept).
    An HTTP error is raised as urllib's ``HTTPError``, which the SDK maps to its own
    exceptions as before; a broken connection or a timeout raises urllib3's errors,
    which ``integrations.errors.network_failure`` classifies as urllib's. No request is
    retried here: a mail is not resent in-call (``MAIL_POLICY``)."""

    def __init__(self) -> None:
        self._pool = urllib3.PoolManager(num_pools=4, maxsize=8, retries=False)

    def open(self, request: urllib.request.Request, timeout: float | None = None) -> _Answer:
        answer = self._pool.request(
            request.get_method(), request.full_url, body=request.data,
            headers=dict(request.header_items()), timeout=timeout, retries=False,
        )  # fmt: skip
        if answer.status >= 400:
            raise urllib.error.HTTPError(request.full_url, answer.status, answer.reason or "",
                                         answer.headers, io.BytesIO(answer.data))  # type: ignore[arg-type]  # fmt: skip
        return _Answer(answer)

    @property
    def connections_opened(self) -> int:
        """Connections opened so far, over every host."""
        pools = self._pool.pools
        return sum(pools[key].num_connections for key in pools.keys())  # noqa: SIM118 (no iter)


class _Answer:
    """A urllib3 response as the SDK reads urllib's: ``getcode``, ``read``, ``info``."""

    def __init__(self, answer: urllib3.BaseHTTPResponse) -> None:
        self._answer = answer

    def getcode(self) -> int:
        return self._answer.status

    def read(self) -> bytes:
        return self._answer.data

    def info(self) -> Any:
        return self._answer.headers


def build_sendgrid_mailer(
    settings: Settings,
    *,
    templates: Mapping[NotificationKind, str] | None = None,
    sender: tuple[str, str] = DEFAULT_SENDER,
    timeout: float = DEFAULT_TIMEOUT,
    policy: RetryPolicy = MAIL_POLICY,
) -> SendGridMailer:
    client = sendgrid.SendGridAPIClient(
        settings.sendgrid_api_key.get_secret_value(),
        host=settings.sendgrid_host or SENDGRID_API_HOST,
    )
    return SendGridMailer(
        client, templates=templates or {}, sender=sender, timeout=timeout, policy=policy
    )
