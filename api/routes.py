"""Every route of the API, in one table joined from the features' own
(``api/<feature>/routes.py``). ``setup_routes`` registers them and ``/v1/openapi.json`` is
generated from the same table (``api.shared.routing``, ``api.shared.openapi``).

The order is the order of registration and of the description's paths: a feature whose
routes are not together in it (orders, returns, the desk) gives two lists.
"""

from __future__ import annotations

from aiohttp import web

from api.catalog import routes as catalog
from api.checkout import routes as checkout
from api.desk import routes as desk
from api.intake import routes as intake
from api.locations import routes as locations
from api.merchant_webhooks import routes as merchant_webhooks
from api.orders import routes as orders
from api.refunds import routes as refunds
from api.returns import routes as returns
from api.shared import operations
from api.shared.routing import Route, register_routes
from api.users import routes as users

ROUTES: tuple[Route, ...] = (
    *users.ROUTES,
    *catalog.ROUTES,
    *checkout.ROUTES,
    *orders.ROUTES,
    *returns.ROUTES,
    *orders.CHANGE_ROUTES,
    *intake.ROUTES,
    *desk.DEAD_LETTER_ROUTES,
    *refunds.ROUTES,
    *returns.RECEIPT_ROUTES,
    *desk.ROUTES,
    *merchant_webhooks.ROUTES,
    *operations.ROUTES,
    *locations.ROUTES,
)


def setup_routes(app: web.Application) -> None:
    register_routes(app, ROUTES)
