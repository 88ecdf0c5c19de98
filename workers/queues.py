"""One queue per stage, so a slow provider cannot starve the rest."""

INVENTORY = "inventory"
PAYMENTS = "payments"
FULFILLMENT = "fulfillment"
SHIPPING = "shipping"
NOTIFICATIONS = "notifications"
WEBHOOKS = "webhooks"

#: Every queue a worker consumes by default.
ALL = (INVENTORY, PAYMENTS, FULFILLMENT, SHIPPING, NOTIFICATIONS, WEBHOOKS)
