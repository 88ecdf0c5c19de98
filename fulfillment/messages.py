"""Every pipeline message as (actor name, queue). Outbox rows, the relay, the sweeper and
the actor registry all name messages from here. Messages carry ids, never objects."""

RESERVE_INVENTORY = ("reserve_inventory", "inventory")
REQUEST_PAYMENT = ("request_payment", "payments")
SETTLE_PAYMENT = ("settle_payment", "payments")
REFUND_PAYMENT = ("refund_payment", "payments")
EXPIRE_RESERVATION = ("expire_reservation", "payments")
FULFIL_ORDER = ("fulfil_order", "fulfillment")
SHIP_ORDER = ("ship_order", "shipping")
REFRESH_TRACKING = ("refresh_tracking", "shipping")
APPLY_TRACKING = ("apply_tracking", "shipping")
PROCESS_WEBHOOK = ("process_webhook", "webhooks")
SEND_NOTIFICATION = ("send_notification", "notifications")
WELCOME_USER = ("send_welcome_email", "notifications")
