"""A location's body is checked by one rule, which the OpenAPI document states whole: a
name or a country the API refuses, the description refuses too, and the API stores
countries upper-case, each once. No I/O."""

from __future__ import annotations

import jsonschema_rs
import pytest
from pydantic import ValidationError

from api.locations.schemas import LocationCreate, LocationUpdate
from api.routes import ROUTES
from api.shared.openapi import build_openapi

DOCUMENT = build_openapi(ROUTES, version="test")
ADDRESS = {"name": "Lager", "line1": "Alexanderplatz 1", "city": "Berlin",
           "postal_code": "10178", "country": "DE"}  # fmt: skip


def documented(body: dict) -> bool:
    schema = {"components": DOCUMENT["components"], "$ref": "#/components/schemas/LocationCreate"}
    return jsonschema_rs.Draft202012Validator(schema).is_valid(body)


def taken(body: dict) -> bool:
    try:
        LocationCreate.model_validate(body)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(
    "name",
    ["", " ", " Lager", "Lager ", "La\u0000ger", "La\nger", "La\tger", "La\u007fger",
     "La\u0085ger", "x" * 101, "Lager Berlin", "Ü", "x" * 100, "Lager · Nord #2"],
)  # fmt: skip
def test_the_api_and_its_description_agree_on_names(name):
    body = {"name": name, "address": ADDRESS}
    assert taken(body) == documented(body)


@pytest.mark.parametrize("ships_to", [["DE"], ["de"], [], ["DEU"], ["D"], ["D1"], "DE", [1]])
def test_the_api_and_its_description_agree_on_countries(ships_to):
    body = {"name": "Lager", "address": ADDRESS, "ships_to": ships_to}
    assert taken(body) == documented(body)


def test_countries_are_stored_upper_case_each_once_in_order():
    body = LocationCreate.model_validate({"name": "Lager", "address": ADDRESS,
                                          "ships_to": ["us", "DE", "US", "at"]})  # fmt: skip
    assert body.ships_to == ["AT", "DE", "US"]


@pytest.mark.parametrize("priority", [-1, 10_001, True, "5", 2.5])
def test_a_priority_outside_0_to_10000_or_not_an_integer_is_refused(priority):
    with pytest.raises(ValidationError):
        LocationCreate.model_validate({"name": "Lager", "address": ADDRESS, "priority": priority})


def test_a_change_names_only_what_was_sent_and_null_is_refused():
    assert LocationUpdate.model_validate({"priority": 3}).model_dump(exclude_unset=True) == {
        "priority": 3
    }
    for field in ("name", "address", "priority", "ships_to", "active"):
        with pytest.raises(ValidationError):
            LocationUpdate.model_validate({field: None})
