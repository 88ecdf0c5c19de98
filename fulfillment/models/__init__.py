"""The database tables as SQLAlchemy 2 models, one module per aggregate. The schema itself
is built by Alembic, whose ``env.py`` compares against ``Base.metadata``: importing this
package registers every table on it.

Invariants the database enforces on its own, whatever the code does:
- one account per e-mail, compared case-insensitively;
- stock can never be oversold: ``0 <= reserved <= on_hand``;
- an order's status is one of the state machine's;
- an idempotency key is unique per customer; a webhook event per provider;
- one default location at most, and location names are unique.
"""

from fulfillment.models.accounts import PasswordReset, RefreshSession, User
from fulfillment.models.base import Base
from fulfillment.models.catalog import Inventory, Product, StockMovement
from fulfillment.models.checkout import Quote
from fulfillment.models.locations import Location
from fulfillment.models.mail import EmailEvent, Notification
from fulfillment.models.merchant_webhooks import (
    MerchantEvent,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from fulfillment.models.orders import (
    IDEMPOTENCY_KEY_TTL,
    ORDER_STATUSES,
    IdempotencyKey,
    Order,
    OrderEvent,
    OrderLine,
    OutboxMessage,
)
from fulfillment.models.provider_webhooks import WEBHOOK_UNAPPLIED_AFTER, WebhookEvent
from fulfillment.models.refunds import Refund
from fulfillment.models.returns import Return
from fulfillment.models.shipping import CarrierShipment, Fulfillment, LabelVoid, Shipment

__all__ = [
    "IDEMPOTENCY_KEY_TTL",
    "ORDER_STATUSES",
    "WEBHOOK_UNAPPLIED_AFTER",
    "Base",
    "CarrierShipment",
    "EmailEvent",
    "Fulfillment",
    "IdempotencyKey",
    "Inventory",
    "LabelVoid",
    "Location",
    "MerchantEvent",
    "Notification",
    "Order",
    "OrderEvent",
    "OrderLine",
    "OutboxMessage",
    "PasswordReset",
    "Product",
    "Quote",
    "RefreshSession",
    "Refund",
    "Return",
    "Shipment",
    "StockMovement",
    "User",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
]
