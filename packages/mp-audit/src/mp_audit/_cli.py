"""``mp-audit fetch|audit|recommend|report``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from periodic_conv import MAX_R_CUT, MIN_R_CUT

from .__about__ import __version__
from ._geometry import DEFAULT_R_CUTS, check_r_cuts
from ._mp import MissingExtraError, MPFetchError

#: bad input, a missing file or extra, a failed download: one line, exit status 2. Anything
#: else (TypeError, RuntimeError, ... from mp-audit itself) is a bug and shows its traceback.
INPUT_ERRORS = (ValueError, OSError, MPFetchError, MissingExtraError)


def _common(p: argparse.ArgumentParser, sources: bool = True) -> None:
    if sources:
        p.add_argument(
            "source",
            nargs="+",
            help="'mp', builtin:prototypes, builtin:dcdft, a CSV/JSON file or a folder",
        )
        p.add_argument("--jobs", type=int, default=1, help="worker processes (0 = all cores)")
        p.add_argument("--limit", type=int, default=None, help="only the first N entries")
        p.add_argument("--target", type=float, default=0.98, help="coverage to reach (0-1]")
        p.add_argument(
            "--r-cut",
            type=float,
            nargs="+",
            default=list(DEFAULT_R_CUTS),
            help=f"cut-offs of the coverage table (Å, each in [{MIN_R_CUT:g}, {MAX_R_CUT:g}])",
        )
    p.add_argument("--cache-dir", default=None, help="MP cache folder (default: user cache dir)")
    p.add_argument(
        "--api-key", default=None, help="MP API key (default: MP_API_KEY, pymatgen settings)"
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mp-audit", description="The Materials Project data audit of thesis chapter 2."
    )
    parser.add_argument("--version", action="version", version=f"mp-audit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="download the Materials Project into the local cache")
    _common(fetch, sources=False)
    fetch.add_argument("--chunk-size", type=int, default=1000, help="materials per cache chunk")
    fetch.add_argument("--elasticity", action="store_true", help="also fetch elastic tensors")
    audit = sub.add_parser("audit", help="run every audit, print (or write) summary JSON")
    _common(audit)
    audit.add_argument("--out", default=None, help="write the summary JSON here")
    audit.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    rec = sub.add_parser("recommend", help="print the recommendation JSON that xtalnet reads")
    _common(rec)
    report = sub.add_parser("report", help="summary.json, figures, report.html and report.md")
    _common(report)
    report.add_argument("--out", required=True, help="output folder")
    return parser


def _check_args(args: argparse.Namespace) -> None:
    """Every option checked before any data is read (one error line each)."""
    args.r_cut = list(check_r_cuts(args.r_cut, "--r-cut"))
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit {args.limit}: expected a number of entries >= 1")
    if args.jobs < 0:
        raise ValueError(f"--jobs {args.jobs}: expected >= 1, or 0 for all cores")
    if not 0 < args.target <= 1:
        raise ValueError(f"--target {args.target}: expected a fraction in (0, 1]")


def _run_audit(args: argparse.Namespace) -> Any:
    from ._pipeline import audit

    _check_args(args)
    source = args.source[0] if len(args.source) == 1 else list(args.source)
    return audit(
        source,
        r_cuts=args.r_cut,
        target=args.target,
        jobs=args.jobs,
        progress=not args.no_progress,
        limit=args.limit,
        api_key=args.api_key,
        cache_dir=args.cache_dir,
    )


def _nothing_measured(source: str, summary: dict) -> str:
    """Why a recommendation or report has no numbers: no structure parsed (or every one had
    a zero-volume cell); names the first failures."""
    failures = summary.get("data_issues", {}).get("parse_failures", [])
    shown = "; ".join(f"{f['material_id']}: {f['error']}" for f in failures[:3])
    more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
    return (f"{source}: no structure of its {summary['n_entries']} entries could be measured "
            f"({summary.get('n_parsed', 0)} parsed, {len(failures)} failed to parse"
            f"{': ' + shown + more if shown else ''}); nothing to recommend "
            f"(mp-audit audit {source} lists the data issues)")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "fetch":
            from ._mp import fetch_mp

            info = fetch_mp(
                api_key=args.api_key,
                cache_dir=args.cache_dir,
                chunk_size=args.chunk_size,
                elasticity=args.elasticity,
                progress=not args.no_progress,
            )
            print(json.dumps(info, indent=2))
            return 0
        if args.command == "audit" and args.out:
            _check_out(args)
        if args.command == "report":
            _check_report_out(args)
        result = _run_audit(args)
        if not result.summary.get("n_entries"):
            raise ValueError(f"{' '.join(args.source)}: no entries to audit (an empty table "
                             "or folder?)")  # fmt: skip
        if args.command != "audit" and not result.summary.get("n_geometry"):
            raise ValueError(_nothing_measured(" ".join(args.source), result.summary))
        if args.command == "audit":
            text = json.dumps(result.summary, indent=2, default=str)
            if args.out:  # its folder made here: an audit's result is never lost to a path
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                with open(args.out, "w") as fh:
                    fh.write(text)
            else:
                print(text)
        elif args.command == "recommend":
            print(json.dumps(result.recommendation, indent=2))
        else:
            from ._report import write_report

            paths = write_report(result, args.out)
            print(json.dumps({k: str(v) for k, v in paths.items()}, indent=2))
        return 0
    except BrokenPipeError:  # `mp-audit audit … | head`: the reader has all it wanted
        _quiet_stdout()
        return 1
    except INPUT_ERRORS as exc:
        print(f"mp-audit: error: {exc}", file=sys.stderr)
        return 2


def _check_out(args: argparse.Namespace) -> None:
    """Refuse an ``audit --out`` that would lose data, before the audit runs: a folder, one
    of the sources (or a file in a source folder), or an existing file without
    ``--overwrite``."""
    out = Path(args.out).resolve()
    if out.is_dir():
        raise ValueError(f"--out {args.out!r} is a folder: name the JSON file to write")
    source = _source_holding(out, args.source)
    if source is not None:
        raise ValueError(f"--out {args.out!r} would replace the source {source!r} it "
                         "audits: write the summary elsewhere")  # fmt: skip
    if out.exists() and not args.overwrite:
        raise ValueError(f"--out {args.out!r} exists: give --overwrite to replace it, or "
                         "another name")  # fmt: skip


def _check_report_out(args: argparse.Namespace) -> None:
    """Refuse a report folder that is a source folder or lies inside one: a later read of
    that folder would take the report's JSON files as data tables."""
    source = _source_holding(Path(args.out).resolve(), args.source)
    if source is not None and Path(source).is_dir():
        raise ValueError(f"--out {args.out!r} is inside the source folder {source!r}: a "
                         "later read of the folder would take the report's files as data; "
                         "write it elsewhere")  # fmt: skip


def _source_holding(out: Path, sources: Sequence[str]) -> str | None:
    """The source that is ``out`` (resolved) or a folder holding it, if any."""
    for source in sources:
        src = Path(source).resolve()
        if out == src or src in out.parents:
            return source
    return None


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush of the closed pipe
    prints nothing either."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
