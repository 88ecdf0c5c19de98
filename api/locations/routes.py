"""The locations' routes: create, list, read and change the places stock ships from."""

from __future__ import annotations

from api.locations import views as locations
from api.locations.schemas import LocationCreate, LocationOut, LocationPage, LocationUpdate
from api.shared.paging import PageQuery
from api.shared.routing import Route

ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/v1/admin/locations",
        locations.create_location,
        "Add a location stock ships from",
        "locations",
        "admin",
        request=LocationCreate,
        response=LocationOut,
        status=201,
        errors=(409,),
    ),
    Route(
        "GET",
        "/v1/admin/locations",
        locations.list_locations,
        "Locations, in the order they ship (priority, then name)",
        "locations",
        "admin",
        query=PageQuery,
        response=LocationPage,
    ),
    Route(
        "GET",
        "/v1/admin/locations/{location_id}",
        locations.get_location,
        "One location",
        "locations",
        "admin",
        response=LocationOut,
    ),
    Route(
        "PATCH",
        "/v1/admin/locations/{location_id}",
        locations.update_location,
        "Rename, re-address, re-rank a location, change where it ships, deactivate it",
        "locations",
        "admin",
        request=LocationUpdate,
        response=LocationOut,
        errors=(409,),
    ),
)
