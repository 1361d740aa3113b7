"""Loading and validating catalogs and events; ID mapping; interaction matrices."""

from coldbrew.data._io import read_table
from coldbrew.data.catalog import Catalog, LoadReport, catalog_from_frame, load_catalog
from coldbrew.data.events import Events, events_from_frame, load_events, parse_timestamps
from coldbrew.data.idmap import IdMap
from coldbrew.data.weighting import event_strengths, interaction_matrix

__all__ = [
    "Catalog",
    "Events",
    "IdMap",
    "LoadReport",
    "catalog_from_frame",
    "event_strengths",
    "events_from_frame",
    "interaction_matrix",
    "load_catalog",
    "load_events",
    "parse_timestamps",
    "read_table",
]
