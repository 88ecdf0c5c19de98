"""The catalogue's routes: browse and read products; admins add, change and stock them."""

from __future__ import annotations

from api.catalog import views as products
from api.catalog.schemas import (
    ProductCreate,
    ProductOut,
    ProductPage,
    ProductQuery,
    ProductUpdate,
    StockLevels,
    StockSet,
)
from api.shared.routing import Route

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/v1/products",
        products.list_products,
        "Browse the catalogue",
        "products",
        query=ProductQuery,
        response=ProductPage,
    ),
    Route(
        "POST",
        "/v1/products",
        products.create_product,
        "Add a product",
        "products",
        "admin",
        request=ProductCreate,
        response=ProductOut,
        status=201,
        errors=(409,),
    ),
    Route(
        "GET",
        "/v1/products/{product_id}",
        products.get_product,
        "One product",
        "products",
        response=ProductOut,
    ),
    Route(
        "PATCH",
        "/v1/products/{product_id}",
        products.update_product,
        "Change a product",
        "products",
        "admin",
        request=ProductUpdate,
        response=ProductOut,
    ),
    Route(
        "PUT",
        "/v1/products/{product_id}/stock",
        products.set_stock,
        "Set counted stock",
        "products",
        "admin",
        request=StockSet,
        response=ProductOut,
        errors=(409, 422),
    ),
    Route(
        "GET",
        "/v1/admin/products/{product_id}/stock",
        products.stock_levels,
        "A product's stock at each location",
        "products",
        "admin",
        response=StockLevels,
    ),
)
