"""``xtalnet train|evaluate|predict|demo`` (console script ``xtalnet``, ``python -m xtalnet``).

The CLI parses arguments and calls :func:`xtalnet.train` (:mod:`xtalnet.training`) and
:mod:`xtalnet.inference`; every bad input ends as one line
``xtalnet: error: ...`` and exit status 2; Ctrl-C exits with 130 after saving ``last.pt``;
``predict`` exits with 1 when none of its structures could be predicted (each row says
why).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["main"]

# CLI flag -> NetworkConfig field
_CONFIG_FLAGS = {
    "r_cut": "r_cut",
    "layers": "num_layers",
    "dtype": "dtype",
    "max_edges": "max_edges",
    "hidden_irreps": "hidden_irreps",
    "backend": "backend",
    "embed_dim": "embed_dim",
    "species_features": "species_features",
    "composition": "composition",
    "tensor_frame": "tensor_frame",
}
# CLI flag -> TrainOptions field
_OPTION_FLAGS = (
    "epochs", "batch_size", "lr", "weight_decay", "schedule", "warmup_steps", "clip",
    "ema_decay", "patience", "seed", "split", "time_limit", "max_steps", "strict", "noise",
    "loss", "huber_delta", "init", "freeze_trunk", "select", "bootstrap",
)  # fmt: skip


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors ``xtalnet: error: ...`` (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.split()[-1]
        where = f"{command}: " if command != "xtalnet" else ""
        print(f"xtalnet: error: {where}{message} (see xtalnet {command} --help)"
              if where else f"xtalnet: error: {message} (see xtalnet --help)",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(2)


def _count(text: str) -> int:
    """argparse type of the counts that must be >= 1 (threads, batch size, epochs, ...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an int >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an int >= 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="xtalnet",
        description="Train, evaluate and use E(3)-equivariant crystal networks.",
    )
    from xtalnet.__about__ import __version__

    p.add_argument("--version", action="version", version=f"xtalnet {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    _train_parser(sub.add_parser("train", help="train a network on a data source"))
    _evaluate_parser(sub.add_parser("evaluate", help="metrics, predictions.csv and parity plots"))
    _predict_parser(sub.add_parser("predict", help="predict for CIF (or POSCAR, ...) files"))
    _demo_parser(sub.add_parser("demo", help="train on builtin:dcdft (K_wien2k) within minutes"))
    return p


def _train_parser(t: argparse.ArgumentParser) -> None:
    t.add_argument(
        "--data", help="anything mp_audit.load reads (CSV/JSON/CIF folder/mp/builtin:dcdft)"
    )
    t.add_argument("--target", action="append", default=[], metavar="COLUMN[:KIND]",
                   help="target column (repeat for several targets sharing one trunk)")  # fmt: skip
    t.add_argument("--out", help="run folder (refused if it holds another run)")
    t.add_argument("--val", help="validation source (default: a seeded split of --data)")
    t.add_argument("--test", help="test source (default: a seeded split of --data)")
    t.add_argument("--config", help="NetworkConfig JSON (all or some fields)")
    t.add_argument(
        "--recommendation", help="saved `mp-audit recommend` JSON to use for r_cut/layers"
    )
    t.add_argument(
        "--resume", metavar="DIR", help="continue the run in DIR exactly where it stopped"
    )
    t.add_argument("--overwrite", action="store_true", help="replace the run held by --out")
    t.add_argument(
        "--ensemble",
        type=_count,
        metavar="K",
        help="train K members (seeds and, where not given, inputs differ; same split) in "
        "--out/member-1..K; predictions are their mean with their spread as '<target>.std'",
    )
    _network_flags(t)
    _training_flags(t)
    _common(t)


def _network_flags(t: argparse.ArgumentParser) -> None:
    g = t.add_argument_group("network (override --config and the recommendation)")
    g.add_argument("--r-cut", dest="r_cut", type=float,
                   help="radial cutoff, Å (rule: the mp-audit recommendation)")  # fmt: skip
    g.add_argument("--layers", type=_count, help="number of interaction layers (rule: the "
                   "fewest that reach the targets' irreps)")  # fmt: skip
    g.add_argument("--dtype", choices=("float32", "float64"))
    g.add_argument(
        "--max-edges", dest="max_edges", type=_count, help="edge budget per batch and process"
    )
    g.add_argument("--hidden-irreps", dest="hidden_irreps")
    g.add_argument("--backend", choices=("auto", "reference", "torch", "cpp", "cuda"))
    g.add_argument("--embed-dim", dest="embed_dim", type=_count, help="species embedding width")
    g.add_argument(
        "--species-features",
        dest="species_features",
        choices=("onehot", "elemental", "both"),
        help="species embedding input: one-hot Z, physical descriptors of the element, or both",
    )
    g.add_argument(
        "--composition",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="composition statistics of each structure join the pooled scalars",
    )
    g.add_argument(
        "--tensor-frame",
        dest="tensor_frame",
        choices=("as_given", "ieee"),
        help="frame of the structures (and tensor predictions): as given, or IEEE standard",
    )


def _training_flags(t: argparse.ArgumentParser) -> None:
    from xtalnet.defaults import option_choices

    rule = {c.field: c.value for c in option_choices([], {}, {})}  # what it picks untimed
    o = t.add_argument_group(
        "training (left out: chosen by the rule of xtalnet.defaults and logged at the start; "
        "else xtalnet.TrainOptions)"
    )
    o.add_argument("--epochs", type=_count,
                   help=f"at most this many epochs (rule: {rule['epochs']}; none with a time "
                        "limit)")  # fmt: skip
    o.add_argument("--time-limit", dest="time_limit", type=float, metavar="MIN",
                   help="training budget in minutes")  # fmt: skip
    o.add_argument("--batch-size", dest="batch_size", type=_count,
                   help=f"structures per step, global (rule: {rule['batch_size']})")  # fmt: skip
    o.add_argument("--lr", type=float, help=f"AdamW peak learning rate (rule: {rule['lr']:g})")
    o.add_argument("--weight-decay", dest="weight_decay", type=float,
                   help=f"AdamW weight decay (rule: {rule['weight_decay']:g})")  # fmt: skip
    o.add_argument("--schedule", choices=("cosine", "plateau", "constant"),
                   help="learning-rate schedule after the warm-up (default cosine)")  # fmt: skip
    o.add_argument("--warmup-steps", dest="warmup_steps", type=int,
                   help="linear warm-up, optimiser steps (default 50)")  # fmt: skip
    o.add_argument("--clip", type=float, help="max gradient norm (default 10; inf: off)")
    o.add_argument("--ema-decay", dest="ema_decay", type=float,
                   help=f"decay of the weights' moving average that is validated and saved "
                        f"(rule: {rule['ema_decay']:g}; 0: off)")  # fmt: skip
    o.add_argument("--patience", type=_count,
                   help=f"early-stopping patience, epochs (rule: {rule['patience']}; none "
                        "with a time limit)")  # fmt: skip
    o.add_argument(
        "--seed",
        type=int,
        help="seed of the split, the batch order and the initialisation (default 0)",
    )
    o.add_argument("--split", type=float, nargs=3, metavar=("TRAIN", "VAL", "TEST"))
    o.add_argument("--max-steps", dest="max_steps", type=_count)
    o.add_argument("--noise", type=float, help="Gaussian position noise, Å (augmentation)")
    o.add_argument(
        "--loss",
        choices=("mse", "l1", "huber"),
        help="regression loss of every standardised irrep copy (default l1)",
    )
    o.add_argument(
        "--huber-delta",
        dest="huber_delta",
        type=float,
        help="Huber threshold, standardised units (default 1)",
    )
    o.add_argument(
        "--bootstrap",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="train on a bootstrap resample of the training split (default off)",
    )
    o.add_argument(
        "--select",
        choices=("loss", "mae"),
        help="what picks best.pt: the validation loss or the relative validation MAE (rule: "
        "loss; mae for band gaps)",
    )
    o.add_argument(
        "--init",
        metavar="CKPT",
        help="start the trunk from a trained run (fine-tuning); new heads are fitted",
    )
    o.add_argument(
        "--freeze-trunk",
        dest="freeze_trunk",
        action="store_true",
        default=None,
        help="with --init: keep the copied trunk fixed",
    )
    o.add_argument("--strict", action="store_true", default=None,
                   help="fail on unusable structures instead of skipping them")  # fmt: skip


def _evaluate_parser(e: argparse.ArgumentParser) -> None:
    e.add_argument("--checkpoint", required=True,
                   help="best.pt / last.pt, a run or an ensemble folder")  # fmt: skip
    e.add_argument("--data", required=True,
                   help="a source with the targets (anything mp_audit.load reads)")  # fmt: skip
    e.add_argument("--out", required=True, help="folder for metrics.json, predictions.csv, plots")
    e.add_argument("--batch-size", dest="batch_size", type=_count, default=64,
                   help="structures per forward pass (default 64)")  # fmt: skip
    e.add_argument("--weights", choices=("ema", "model"), default="ema",
                   help="the weights' moving average (default) or the raw weights")  # fmt: skip
    e.add_argument("--strict", action="store_true")
    e.add_argument("--overwrite", action="store_true",
                   help="replace an earlier evaluation in --out")  # fmt: skip
    _common(e, progress=False)


def _predict_parser(r: argparse.ArgumentParser) -> None:
    r.add_argument("--checkpoint", required=True, help="best.pt / last.pt, a run or an ensemble")
    r.add_argument("files", nargs="*", help="structure files pymatgen reads, or folders of them")
    r.add_argument("--json", action="store_true", help="print JSON instead of a table")
    r.add_argument("--weights", choices=("ema", "model"), default="ema",
                   help="the weights' moving average (default; what was validated) or the raw "
                        "weights")  # fmt: skip
    r.add_argument(
        "--data", help="screen a whole source (anything mp_audit.load reads) into --out (CSV)"
    )
    r.add_argument("--out", help="the CSV that --data screening writes")
    r.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    r.add_argument("--batch-size", dest="batch_size", type=_count, default=64,
                   help="structures per forward pass (default 64)")  # fmt: skip
    _common(r)


def _demo_parser(d: argparse.ArgumentParser) -> None:
    d.add_argument("--out", help="folder for every file the demo writes (default: a temp dir)")
    d.add_argument("--time-limit", dest="time_limit", type=float, default=2.0, metavar="MIN",
                   help="training budget, minutes, all members together (default 2)")  # fmt: skip
    d.add_argument("--seed", type=int, default=0, help="seed of the split and the members "
                   "(default 0)")  # fmt: skip
    # 1-4 atoms per cell: too little work per op to share between threads (measured on the
    # 2-core VM under load: 372 epochs in 2 minutes with 1 thread, 32 with 2)
    d.add_argument("--threads", type=_count, default=1)
    d.add_argument("--quiet", action="store_true")
    d.add_argument("--overwrite", action="store_true",
                   help="replace the run an earlier demo left in --out")  # fmt: skip


def _common(p: argparse.ArgumentParser, progress: bool = True) -> None:
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    p.add_argument("--threads", type=_count, help="torch CPU threads (>= 1)")
    p.add_argument("--quiet", action="store_true")
    if progress:
        p.add_argument("--no-progress", dest="progress", action="store_false")


def _named_by_flag(message: str, args: argparse.Namespace) -> str:
    """A message about a NetworkConfig / TrainOptions field (``lr must be > 0``) names the
    flag the user gave it by (``--lr must be > 0``); fields set otherwise (a ``--config``
    file, the rule) keep their Python name."""
    field, sep, rest = message.partition(" ")
    if not sep:
        return message
    dest = {v: k for k, v in _CONFIG_FLAGS.items()}.get(field, field)
    if dest not in (*_CONFIG_FLAGS, *_OPTION_FLAGS) or getattr(args, dest, None) is None:
        return message
    return f"--{dest.replace('_', '-')} {rest}"


def _fail(msg: str) -> int:
    print(f"xtalnet: error: {msg}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad argument (2, message printed)
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(int(args.threads))
    try:
        if args.command == "train":
            return _train(args, argv)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "predict":
            return _predict(args)
        return _demo(args)
    except (ValueError, TypeError) as exc:
        return _fail(_named_by_flag(str(exc), args))
    except BrokenPipeError:  # `xtalnet predict … | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # mute the last flush
        return 1
    except OSError as exc:  # a folder or file that cannot be written or read
        return _fail(f"{exc.strerror or exc}: {exc.filename!r}" if exc.filename else str(exc))
    except KeyboardInterrupt:
        if int(os.environ.get("RANK", "0")) == 0:  # under torchrun: said once, not per rank
            print("xtalnet: interrupted" + _resume_hint(args), file=sys.stderr)
        return 130


def _resume_hint(args: argparse.Namespace) -> str:
    """How to continue an interrupted training (also under --quiet, where the log is mute)."""
    out = getattr(args, "out", None) or getattr(args, "resume", None)
    if args.command != "train" or out is None:
        return ""
    root = Path(out)
    if (root / "ensemble.json").is_file() or (root / "last.pt").is_file():
        return f"; continue with xtalnet train --resume {out}"
    return ""


def _train(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    from xtalnet.training import train

    out = args.out or args.resume
    if out is None:
        return _fail("train: give --out DIR (or --resume DIR)")
    if args.resume and args.out and Path(args.out).resolve() != Path(args.resume).resolve():
        return _fail(
            f"train: --out {args.out!r} and --resume {args.resume!r} name different folders"
        )
    from xtalnet.ensemble import is_member_folder

    if is_member_folder(out):  # its σ and scores are fitted over all members together
        parent = Path(out).resolve().parent
        return _fail(f"train: {out!r} is a member of the ensemble {str(parent)!r}: continue "
                     f"the ensemble with --resume {str(parent)!r} (a longer --time-limit or "
                     "--epochs continues every member), or train elsewhere")  # fmt: skip
    run = Path(out) / "run.json"
    if not run.is_file():
        run = Path(out) / "ensemble.json"  # an ensemble keeps its sources there
    if args.resume and run.is_file():  # a resumed run keeps its sources
        saved = json.loads(run.read_text(encoding="utf-8"))
        for role in ("data", "val", "test"):
            if getattr(args, role) is None:
                setattr(args, role, saved.get(role))
    if args.resume and not Path(args.resume).is_dir():
        return _fail(f"train --resume {args.resume!r}: no such run folder")
    if args.resume and args.data is None and not run.is_file():
        return _fail(f"train --resume {args.resume!r}: not a run folder (no run.json or "
                     "ensemble.json there)")  # fmt: skip
    data = args.data
    if data is None:
        return _fail("train: --data is required (e.g. --data builtin:dcdft)")
    config: dict[str, Any] = {}
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            return _fail(f"--config: no such file {args.config!r}")
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            return _fail(f"--config {args.config!r} is not valid JSON: {exc}")
        if not isinstance(config, dict):
            return _fail(
                f"--config {args.config!r} must hold a JSON object of NetworkConfig fields"
            )
        config.pop("schema", None)
    for flag, name in _CONFIG_FLAGS.items():
        v = getattr(args, flag)
        if v is not None:
            config[name] = v
    targets = list(args.target) or list(config.get("targets", []))
    config.pop("targets", None)
    options = {k: getattr(args, k) for k in _OPTION_FLAGS if getattr(args, k) is not None}
    if "clip" in options and math.isinf(options["clip"]):
        options["clip"] = math.inf
    if not targets and not args.resume:
        return _fail("train: give at least one --target COLUMN[:KIND] (e.g. --target band_gap)")
    result = train(
        data, targets, out, val=args.val, test=args.test, config=config, options=options,
        recommendation=args.recommendation, resume=bool(args.resume), overwrite=args.overwrite,
        device=args.device, progress=args.progress, quiet=args.quiet,
        argv=list(argv) if argv is not None else sys.argv[1:], ensemble=args.ensemble,
    )  # fmt: skip
    if not args.quiet and int(os.environ.get("RANK", "0")) == 0:
        print(f"run folder: {result['out']}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from xtalnet.inference import evaluate

    evaluate(
        args.checkpoint, args.data, args.out, batch_size=args.batch_size, strict=args.strict,
        weights=args.weights, quiet=args.quiet, device=args.device, overwrite=args.overwrite,
    )  # fmt: skip
    if not args.quiet:
        print(f"wrote {Path(args.out) / 'metrics.json'}, predictions.csv and parity plots")
    return 0


# the suffixes pymatgen's Structure.from_file reads (.xyz it reads as a molecule only)
STRUCTURE_SUFFIXES = (".cif", ".vasp", ".poscar", ".json", ".cssr")


def _is_structure_file(path: Path) -> bool:
    """Named as a structure file pymatgen reads: a known suffix, or POSCAR / CONTCAR anywhere
    in the name (pymatgen's own rule: ``Fe2O3_POSCAR``, ``POSCAR.relax``)."""
    from mp_audit import is_structure_file

    return path.suffix.lower() in STRUCTURE_SUFFIXES or is_structure_file(path)


def _structure_files(paths: Sequence[str]) -> list[Path]:
    """The files to predict: every path given, a folder standing for its structure files
    (the other files of a folder are named in a warning, never dropped without a word)."""
    from xtalnet.dataset import say_left_out

    files: list[Path] = []
    for path in paths:
        p = Path(path)
        if p.is_dir():
            listed = sorted(f for f in p.iterdir() if f.is_file())
            found = [f for f in listed if _is_structure_file(f)]
            if not found:
                kinds = (
                    ", ".join(STRUCTURE_SUFFIXES) + ", or a name holding POSCAR or CONTCAR; "
                    "each maybe .gz; sub-folders are not searched"
                )
                raise ValueError(f"predict: folder {path!r} holds no structure file ({kinds})")
            skipped = [f.name for f in listed if f not in found]
            skipped += sorted(d.name + "/" for d in p.iterdir() if d.is_dir())
            say_left_out(f"predict {str(p)!r}", skipped,
                         lambda msg: print(f"xtalnet: {msg}", file=sys.stderr))  # fmt: skip
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise ValueError(f"predict: no such file or folder {path!r}")
    return files


def _read_structure(path: Path) -> Any:
    from pymatgen.core import Structure

    try:
        with warnings.catch_warnings():  # a bad CIF's parser warnings: its status says why
            warnings.simplefilter("ignore")
            return Structure.from_file(str(path))
    except Exception as exc:  # pymatgen raises many types for unreadable files
        from mp_audit import is_table_file

        hint = ("; a table or list of structures is read with --data FILE --out CSV"
                if is_table_file(path) else "")  # fmt: skip
        return ValueError(f"{str(path)!r} is not a structure file pymatgen reads: {exc}{hint}")


def _fmt(v: Any) -> str:
    if isinstance(v, list):
        arr = __import__("numpy").asarray(v)
        return f"<{'x'.join(map(str, arr.shape))} tensor>"
    if v is None:
        return "nan"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _predict(args: argparse.Namespace) -> int:
    from xtalnet.inference import load, predict_table, unit_label
    from xtalnet.tables import frame_note

    if args.data is not None:
        return _screen(args)
    if not args.files:
        return _fail("predict: give structure files (or folders), or --data SOURCE --out CSV")
    if args.out is not None:
        return _fail("predict: --out writes the rows of --data SOURCE; for structure files "
                     "use --json > FILE, or give their folder as --data")  # fmt: skip
    net = load(args.checkpoint, weights=args.weights, device=args.device)
    files = _structure_files(args.files)
    rows = predict_table(net, [_read_structure(f) for f in files], [f.name for f in files])
    flagged = [r for r in rows if r["status"] != "ok"]
    failed = [r for r in flagged if r["status"].startswith("not predicted")]
    if flagged:
        print(f"xtalnet: warning: {len(flagged)} of {len(rows)} structure(s) flagged (see the "
              "status column): " + "; ".join(f"{r['name']}: {r['status']}" for r in flagged[:3])
              + ("; …" if len(flagged) > 3 else ""),
              file=sys.stderr)  # fmt: skip
    note = frame_note(net)
    if args.json:
        print(json.dumps(rows, indent=2))
        if note:  # on stderr: the JSON on stdout stays one document
            print(f"xtalnet: note: {note}", file=sys.stderr)
        return _nothing_predicted(len(rows) - len(failed), len(rows))
    keys = list(rows[0])
    table = [[_fmt(r[k]) for k in keys] for r in rows]
    widths = [max(len(k), *(len(row[i]) for row in table)) for i, k in enumerate(keys)]
    print("  ".join(k.ljust(w) for k, w in zip(keys, widths)).rstrip())
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    if any(isinstance(r[k], list) for r in rows for k in keys):
        print("tensors are shown by their shape: --json prints their entries")
    units = {k: unit_label(net, k) for k in keys if unit_label(net, k)}
    if units:
        print("units: " + ", ".join(f"{k} {u}" for k, u in units.items())
              + ("; K_VRH / G_VRH in GPa" if any(k.endswith("K_VRH") for k in keys)
                 else ""))  # fmt: skip
    if note:
        print(note)
    return _nothing_predicted(len(rows) - len(failed), len(rows))


def _screen(args: argparse.Namespace) -> int:
    from xtalnet.inference import load
    from xtalnet.screening import check_out, screen

    if args.files:
        return _fail("predict: give either structure files or --data, not both")
    if args.out is None:
        return _fail("predict --data: give --out CSV, the file the predictions go to")
    out = Path(args.out)
    check_out(out, args.data, args.checkpoint, args.overwrite)  # before the model loads
    model = load(args.checkpoint, weights=args.weights, device=args.device)
    say = (lambda msg: None) if args.quiet else print
    counts = screen(model, args.data, out, batch_size=args.batch_size,
                    overwrite=args.overwrite, progress=args.progress and not args.quiet,
                    log=say)  # fmt: skip
    return _nothing_predicted(counts["rows"] - counts["failed"], counts["rows"])


def _nothing_predicted(predicted: int, rows: int) -> int:
    """Exit status 1 where no structure could be predicted (every row says why), so that
    scripts notice; else 0."""
    if rows and not predicted:
        print(f"xtalnet: error: none of the {rows} structure(s) could be predicted (see the "
              "status column)", file=sys.stderr)  # fmt: skip
        return 1
    return 0


def _demo(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="xtalnet-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    # everything the demo writes stays in --out: matplotlib's and inductor's caches there, and
    # no JIT-compiled extension (the demo uses the plain-torch backend)
    os.environ.setdefault("MPLCONFIGDIR", str(out / ".matplotlib"))
    os.environ.setdefault("XTAL_DISABLE_EXTENSIONS", "1")
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(out / ".torchinductor"))
    import torch

    from xtalnet.demo import run_demo

    torch.set_num_threads(args.threads)
    t0 = time.time()
    say = (lambda msg: None) if args.quiet else print
    run_demo(out, minutes=args.time_limit, threads=args.threads, seed=args.seed,
             overwrite=args.overwrite, quiet=args.quiet)  # fmt: skip
    say(f"demo finished in {time.time() - t0:.0f} s")
    return 0
