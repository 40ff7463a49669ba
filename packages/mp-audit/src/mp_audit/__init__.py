"""mp_audit: the Materials Project data audit of thesis chapter 2 as a library and a CLI."""

from .__about__ import __version__
from ._audits import (
    EXPECTED_RUN_TYPES,
    audit_entry,
    band_gap_stats,
    coverage_table,
    element_presence,
    moments,
    recommend,
    recommendation_json,
    summarize,
)
from ._dataset import Dataset, Entry, from_entries, from_structures, parse_payload
from ._elastic import elastic_checks, voigt_reuss_bounds, vrh_moduli
from ._geometry import (
    DEFAULT_R_CUTS,
    OVERLAP_DISTANCE,
    check_r_cuts,
    enclosing_radius,
    geometry_metrics,
    graph_metrics,
    inscribed_radius,
    nearest_neighbor_distances,
)
from ._loaders import PROPERTY_ALIASES, is_structure_file, is_table_file, load
from ._mp import MPFetchError, fetch_mp, read_cache, resolve_api_key
from ._pipeline import AuditResult, audit, map_entries
from ._report import write_report

__all__ = [
    "DEFAULT_R_CUTS",
    "EXPECTED_RUN_TYPES",
    "OVERLAP_DISTANCE",
    "PROPERTY_ALIASES",
    "AuditResult",
    "Dataset",
    "Entry",
    "MPFetchError",
    "__version__",
    "audit",
    "audit_entry",
    "band_gap_stats",
    "check_r_cuts",
    "coverage_table",
    "elastic_checks",
    "element_presence",
    "enclosing_radius",
    "fetch_mp",
    "from_entries",
    "from_structures",
    "geometry_metrics",
    "graph_metrics",
    "inscribed_radius",
    "is_structure_file",
    "is_table_file",
    "load",
    "map_entries",
    "moments",
    "nearest_neighbor_distances",
    "parse_payload",
    "read_cache",
    "recommend",
    "recommendation_json",
    "resolve_api_key",
    "summarize",
    "voigt_reuss_bounds",
    "vrh_moduli",
    "write_report",
]
