"""Stripe's ``expand[]`` for the sandbox's PaymentIntents: ``latest_charge`` on one
intent, ``data.latest_charge`` on a list or search page (Stripe refuses the bare name
there and says which to use). Stripe Tax's ``line_items`` is expanded where its objects
are answered (``sandbox.stripe.tax``). Other expansions are not known to the sandbox and
are answered unexpanded."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from sandbox.stripe.wire import invalid, list_page

#: A PaymentIntent's expandable property, on an object and on a page of them.
LATEST_CHARGE = "latest_charge"
PAGE_LATEST_CHARGE = f"data.{LATEST_CHARGE}"

Lookup = Callable[[str], Mapping[str, Any] | None]


def expansions(params: Mapping[str, Any]) -> set[str]:
    """The paths of ``expand`` (``expand[]=a``, ``expand[0]=a`` or ``expand=a``)."""
    raw = params.get("expand")
    if isinstance(raw, str):
        return {raw}
    if isinstance(raw, list):
        return {str(path) for path in raw}
    return set()


def expand_intent(intent: dict[str, Any], params: Mapping[str, Any], charge: Lookup):
    """The intent as answered: its charge in place of the id when asked for. The stored
    intent is never changed (events and later answers show the id)."""
    if LATEST_CHARGE not in expansions(params):
        return intent
    return _with_charge(intent, charge)


def expand_page(page: dict[str, Any], params: Mapping[str, Any], charge: Lookup):
    paths = expansions(params)
    if LATEST_CHARGE in paths:
        raise invalid(
            f"This property cannot be expanded ({LATEST_CHARGE}). You may want to try "
            f"expanding '{PAGE_LATEST_CHARGE}' instead.",
            param="expand",
        )
    if PAGE_LATEST_CHARGE in paths:
        page["data"] = [_with_charge(intent, charge) for intent in page["data"]]
    return page


def _with_charge(intent: dict[str, Any], charge: Lookup) -> dict[str, Any]:
    found = charge(intent[LATEST_CHARGE]) if intent.get(LATEST_CHARGE) else None
    if found is None:
        return intent
    return {**intent, LATEST_CHARGE: copy.deepcopy(found)}


def expand_list(obj: Mapping[str, Any], name: str, url: str, params: Mapping[str, Any]):
    """An object whose list ``name`` Stripe leaves out (null) unless the request expands
    it, then answers as the list's first page (the rest through ``url``)."""
    if name not in expansions(params):
        return {**obj, name: None}
    return {**obj, name: list_page(list(obj[name])[::-1], {}, url=url)}
