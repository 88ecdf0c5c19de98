"""Every pipeline message as (actor name, queue), and the queues. Outbox rows, the relay,
the sweeper, the actor registry and the workers all name messages and queues from here.
Messages carry ids, never objects. One queue per stage, so a slow provider cannot
starve the rest."""

INVENTORY = "inventory"
PAYMENTS = "payments"
FULFILLMENT = "fulfillment"
SHIPPING = "shipping"
NOTIFICATIONS = "notifications"
WEBHOOKS = "webhooks"
#: Outbound webhooks to the merchant: a slow or failing endpoint waits here, alone.
MERCHANT_WEBHOOKS = "merchant_webhooks"

#: Every queue a worker consumes by default.
QUEUES = (INVENTORY, PAYMENTS, FULFILLMENT, SHIPPING, NOTIFICATIONS, WEBHOOKS, MERCHANT_WEBHOOKS)

RESERVE_INVENTORY = ("reserve_inventory", INVENTORY)
REQUEST_PAYMENT = ("request_payment", PAYMENTS)
SETTLE_PAYMENT = ("settle_payment", PAYMENTS)
REFUND_PAYMENT = ("refund_payment", PAYMENTS)
CAPTURE_PAYMENT = ("capture_payment", PAYMENTS)
PROCESS_REFUND = ("process_refund", PAYMENTS)
EXPIRE_RESERVATION = ("expire_reservation", PAYMENTS)
FULFIL_ORDER = ("fulfil_order", FULFILLMENT)
SHIP_ORDER = ("ship_order", SHIPPING)
REFRESH_TRACKING = ("refresh_tracking", SHIPPING)
APPLY_TRACKING = ("apply_tracking", SHIPPING)
#: An order waiting in address_invalid: the carrier is asked again (the sweeper, rarely).
RECHECK_ADDRESS = ("recheck_address", SHIPPING)
#: A label bought for goods that will not ship: void it (the order id), then follow the
#: void until the carrier settles it (the shipment id).
VOID_LABEL = ("void_label", SHIPPING)
SETTLE_LABEL_VOID = ("settle_label_void", SHIPPING)
#: A customer's return (the return id): buy its EasyPost return label and mail it.
CREATE_RETURN_LABEL = ("create_return_label", SHIPPING)
PROCESS_WEBHOOK = ("process_webhook", WEBHOOKS)
SEND_NOTIFICATION = ("send_notification", NOTIFICATIONS)
WELCOME_USER = ("send_welcome_email", NOTIFICATIONS)
DELIVER_WEBHOOK = ("deliver_webhook", MERCHANT_WEBHOOKS)
#: Merchant webhook deliveries in a batch (``delivery_ids``, one endpoint's, in order):
#: what the scheduler's dispatch sends; ``deliver_webhook`` is one delivery (redelivery).
DELIVER_WEBHOOKS = ("deliver_webhooks", MERCHANT_WEBHOOKS)
