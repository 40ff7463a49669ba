"""mp_audit: the Materials Project data audit of thesis chapter 2 as a library and a CLI."""

from .__about__ import __version__
from ._audits import (
    EXPECTED_RUN_TYPES,
    NOBLE_GASES,
    RADIOACTIVE,
    audit_entry,
    band_gap_stats,
    coverage_table,
    elastic_checks,
    element_presence,
    moments,
    recommend,
    recommendation_json,
    summarize,
    voigt_reuss_bounds,
)
from ._dataset import Dataset, Entry, from_entries, from_structures, parse_payload
from ._figures import make_figures
from ._geometry import (
    DEFAULT_R_CUTS,
    enclosing_radius,
    geometry_metrics,
    graph_metrics,
    inscribed_radius,
    nearest_neighbour_distances,
)
from ._loaders import load
from ._mp import MPFetchError, default_cache_dir, fetch_mp, read_cache, resolve_api_key
from ._pipeline import AuditResult, audit, map_entries
from ._report import THESIS, comparison_rows, write_report

__all__ = [
    "DEFAULT_R_CUTS",
    "EXPECTED_RUN_TYPES",
    "NOBLE_GASES",
    "RADIOACTIVE",
    "THESIS",
    "AuditResult",
    "Dataset",
    "Entry",
    "MPFetchError",
    "__version__",
    "audit",
    "audit_entry",
    "band_gap_stats",
    "comparison_rows",
    "coverage_table",
    "default_cache_dir",
    "elastic_checks",
    "element_presence",
    "enclosing_radius",
    "fetch_mp",
    "from_entries",
    "from_structures",
    "geometry_metrics",
    "graph_metrics",
    "inscribed_radius",
    "load",
    "make_figures",
    "map_entries",
    "moments",
    "nearest_neighbour_distances",
    "parse_payload",
    "read_cache",
    "recommend",
    "recommendation_json",
    "resolve_api_key",
    "summarize",
    "voigt_reuss_bounds",
    "write_report",
]
