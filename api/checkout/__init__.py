"""Checkout: what an order will cost before it is placed (shipping options and tax)."""
