"""The sample catalogue ``fulfillment catalog seed`` and ``make run`` load into an empty
database, so a new install has something to browse and order."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fulfillment.models import Inventory, Product
from fulfillment.stock import movement

#: (sku, name, category, price, on hand, description)
SAMPLE_PRODUCTS = (
    ("TEE-BLK-M", "Black T-shirt, M", "apparel", "19.00", 120, "Organic cotton, regular fit."),
    ("TEE-WHT-L", "White T-shirt, L", "apparel", "19.00", 80, "Organic cotton, regular fit."),
    ("HOOD-GRY-M", "Grey hoodie, M", "apparel", "49.50", 40, "Brushed fleece with a zip."),
    ("MUG-ENML", "Enamel mug", "kitchen", "12.50", 200, "Steel with enamel, 350 ml."),
    ("KETTLE-GS", "Gooseneck kettle", "kitchen", "64.00", 25, "Stovetop, 1 litre."),
    ("BEANS-1KG", "Coffee beans, 1 kg", "grocery", "28.90", 150, "Medium roast, whole bean."),
    ("TEA-GRN", "Green tea, 100 g", "grocery", "9.75", 300, "Loose leaf sencha."),
    ("NOTE-A5", "Notebook A5", "stationery", "7.20", 500, "Dotted, 192 pages."),
    ("PEN-GEL-3", "Gel pens, pack of 3", "stationery", "4.95", 400, "0.5 mm, black."),
    ("BAG-TOTE", "Canvas tote bag", "accessories", "15.00", 90, "Heavy canvas, long handles."),
    ("CAP-NVY", "Navy cap", "accessories", "22.00", 60, "Adjustable strap."),
    ("LAMP-DSK", "Desk lamp", "home", "39.99", 30, "LED, three brightness levels."),
)


def seed_catalog(session: Session, *, currency: str = "usd") -> int:
    """Adds the sample products when the catalogue is empty; returns how many it added."""
    if session.scalar(select(func.count()).select_from(Product)):
        return 0
    for sku, name, category, price, on_hand, description in SAMPLE_PRODUCTS:
        product = Product(
            sku=sku,
            name=name,
            category=category,
            price=Decimal(price),
            currency=currency,
            description=description,
        )
        session.add(product)
        session.flush()
        session.add(Inventory(product_id=product.id, on_hand=on_hand, reserved=0))
        session.execute(*movement(product.id, on_hand, "count"))
    return len(SAMPLE_PRODUCTS)
