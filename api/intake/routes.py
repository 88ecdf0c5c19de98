"""The providers' webhook routes: Stripe, EasyPost and SendGrid, each signed."""

from __future__ import annotations

from api.intake import providers as webhooks
from api.intake import sendgrid as sendgrid_webhook
from api.intake.schemas import WebhookAck
from api.shared.routing import Route

ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/v1/webhooks/stripe",
        webhooks.stripe_webhook,
        "Stripe events (signed with Stripe-Signature)",
        "webhooks",
        response=WebhookAck,
        errors=(400, 413),
    ),
    Route(
        "POST",
        "/v1/webhooks/easypost",
        webhooks.easypost_webhook,
        "EasyPost events (signed with X-Hmac-Signature)",
        "webhooks",
        response=WebhookAck,
        errors=(400, 413),
    ),
    Route(
        "POST",
        "/v1/webhooks/sendgrid",
        sendgrid_webhook.sendgrid_webhook,
        "SendGrid delivery events (signed with X-Twilio-Email-Event-Webhook-Signature)",
        "webhooks",
        response=WebhookAck,
        errors=(400, 413),
    ),
)
