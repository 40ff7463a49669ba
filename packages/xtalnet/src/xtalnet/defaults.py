"""The one rule that picks what the user of ``xtalnet train`` did not give.

Defaults are the product: ``xtalnet train --data … --target …`` must train well without any
other flag. :func:`choose` decides every network field and training option the user left
open from the targets, the size of the training split and the ``mp-audit`` recommendation,
each with its reason; the run logs the reasons at its start and records, in
``config.json`` and ``options.json`` (key ``"provenance"``), which values were given and
which were chosen by this rule. An explicit flag (or config / options field) always wins.

The rule and the measurements behind it (A/B runs on the files of ``XTAL_SHARED_DATA``,
2-core VM, 1 thread per run; commands and numbers in ``docs/RESULTS.md``):

- species features ``elemental``: elements described by their physical properties, so an
  element seen a few times borrows from its neighbours in the periodic table (MP-20
  formation energy, 5 min: test MAE 0.137 eV/atom vs 0.224 with a free row per element
  alone); for band gaps and plain scalar targets ``both``, the descriptors and a free row
  per element (MP-20 band gap, 4 min: 0.33 and 0.35 eV vs 0.39-0.43 with the descriptors
  alone; MP-20 formation energy, 18 min: 0.107 vs 0.132 eV/atom);
- ``composition`` on: composition statistics join the pooled scalars (MP-20 formation
  energy, 5 min: 0.132 vs 0.143; de Jong elastic tensor, 10 min: see RESULTS.md);
- ``tensor_frame`` ``ieee`` for the tensor columns the Materials Project stores in the
  IEEE standard orientation (elastic and piezoelectric tensors): a CIF's frame is a
  reader's convention, and 21 % of the de Jong tensors differ from their structure's frame
  (elastic tensor, 10 min: test MAE 8.55 GPa vs 10.52; piezoelectric, 8 min: 0.188 vs 0.200
  C/m²);
- ``r_cut``: the audit's recommendation (the smallest cutoff that connects 98 % of the
  training graphs, thesis §2.2);
- ``l_filter_max``: the largest l of the targets' irreps (4 for elastic, 3 for piezoelectric
  tensors; 2 otherwise). An atom on a site of cubic symmetry sees its neighbours first at
  l = 4 (l = 3 on a tetrahedral site): with filters of l <= 2 its features have no l > 0
  part in any layer, and the predicted elastic tensor of every crystal made of such sites
  (rocksalt, fcc, bcc, diamond, zincblende, CsCl, fluorite, Heusler) was exactly isotropic,
  its piezoelectric tensor exactly zero, whatever the data (RESULTS.md: A/B runs);
- ``num_layers``: the fewest that reach every target's irreps (1 for scalars, band gaps,
  dielectric and, with those filters, elastic tensors; 2 for piezoelectric ones), never more
  than the audit recommends unless the targets need it (MP-20 formation energy, 4 min:
  validation MAE 0.21 eV/atom with 1 layer, 0.28 with 2, 0.33-0.36 with the recommended 3);
- training: AdamW at 3e-3 with batches of 16 and weight decay 0.2 (MP-20 formation energy,
  5 min: 0.129 vs 0.137 with 0.05; de Jong elastic tensor, 10 min: 8.09 vs 8.55 GPa); the L1
  loss of every irrep copy (de Jong elastic tensor: 7.32 vs 8.55 GPa with MSE; e_total
  2.91 vs 3.80; MP-20 band gap 0.420 vs 0.439 eV; MP-20 formation energy: one run ties,
  0.132 eV/atom, ensembles of 5 score 0.110-0.116 vs 0.114-0.118 with MSE and their σ
  ranks the errors better, Spearman 0.35-0.37 vs 0.26-0.33); for band gaps
  ``best.pt`` chosen by the validation MAE (0.420 vs 0.444 eV by the loss); an EMA of
  0.99; with a time limit neither the epochs nor the patience are bounded (the time
  decides and the cosine schedule anneals to its end: MP-20 formation energy, 4-min
  members, which stopped early after epochs of 0.9 s: one desc member 0.152 eV/atom
  stopped at epoch 125 vs 0.130 run to the limit), without one 300 epochs and patience 100;
- ensemble members (``--ensemble K``) vary the inputs left open: member 1 takes the run's
  defaults, the next ones the next combination of :func:`input_values` (plain scalars:
  the descriptors alone, both embeddings, no composition statistics, both embeddings;
  elsewhere the other species embedding, then no composition statistics; for band gaps
  the composition statistics alone). Members that see a crystal through different inputs
  err less alike than members that differ in their seed only (MP-20 formation energy,
  4-min members: the four input combinations 0.106 eV/atom, four seeds 0.132; the A/B
  runs and the ``--ensemble 5`` rows are in RESULTS.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from xtalnet.heads import TargetSpec

__all__ = [
    "IEEE_TENSOR_COLUMNS",
    "Choice",
    "choose",
    "input_values",
    "member_inputs",
    "option_choices",
    "provenance",
]

#: Tensor columns the Materials Project stores in the IEEE 176 standard orientation.
IEEE_TENSOR_COLUMNS = frozenset(
    {
        "elastic_tensor",
        "elasticity.elastic_tensor",
        "elastic_tensor_voigt",
        "piezoelectric_tensor",
    }
)


def input_values(specs: Sequence[TargetSpec]) -> list[dict[str, Any]]:
    """The input combinations of the ensemble members in turn, best first: a run of its own
    takes the first, member ``k`` the ``(k - 1) mod n``-th (:func:`member_inputs`). A
    combination may come back: that is its share of the members.

    A band gap keeps both species embeddings (a free row per element beside its descriptors:
    MP-20 band gap, 4 min, 0.33 eV vs 0.42 with the descriptors alone) and varies the
    composition statistics. Plain scalar targets (kind ``scalar`` only) take both embeddings
    first (MP-20 formation energy, 18 min: 0.107 eV/atom vs 0.132 with the descriptors
    alone; 4-min runs 0.102-0.113 vs 0.123-0.133), then the descriptors, both with
    composition statistics, both again, the descriptors without them, both again: three of
    five members with both embeddings. The two weaker members make the spread rank the
    errors; with fewer members with both embeddings the best of them beats the mean, with
    more the spread ranks the errors worse (offline, 300 ensembles of 5 drawn from 20 + 9
    + 6 cached 4-min members, scored on the 142 test and 243 extra.csv crystals together:
    the mean better than every member and Spearman(|error|, σ) >= 0.3 in 40 % of the
    draws with three, 21 % with two, 5 % with five; RESULTS.md). Elsewhere (tensors, log
    targets such as the de Jong moduli, where both embeddings tied: log10 MAE 0.041 / 0.074
    vs 0.038 / 0.075) the descriptors come first. Both embeddings without composition
    statistics is left out: it was the worst member of both A/B ensembles (MP-20 formation
    energy, test MAE 0.179 and 0.173 eV/atom vs 0.115-0.140 for the others), and an
    ensemble without it errs less and ranks its errors better (RESULTS.md).
    """
    if any(s.kind == "band_gap" for s in specs):
        return [
            {"composition": True, "species_features": "both"},
            {"composition": False, "species_features": "both"},
        ]
    descriptors = {"composition": True, "species_features": "elemental"}
    both = {"composition": True, "species_features": "both"}
    structure_alone = {"composition": False, "species_features": "elemental"}
    if all(s.kind == "scalar" for s in specs):
        return [both, descriptors, both, structure_alone, both]
    return [descriptors, both, structure_alone]


def member_inputs(
    member: int, given: Mapping[str, Any], specs: Sequence[TargetSpec]
) -> dict[str, Any]:
    """The input fields of ensemble member ``member`` (1 … K; 0: a run of its own) that
    ``given`` leaves open. With every input field open: the ``(member - 1) mod n``-th of
    the ``n`` combinations of :func:`input_values`. Otherwise the distinct combinations
    that agree with ``given``, restricted to the open fields (when none agrees, the open
    fields of every combination), in turn. Member 1 and a run of its own take the first."""
    combos = input_values(specs)
    if not any(f in given for combo in combos for f in combo):
        return dict(combos[max(member - 1, 0) % len(combos)])
    agree = [c for c in combos if all(given.get(f, v) == v for f, v in c.items())]
    options: list[dict[str, Any]] = []
    for combo in agree or combos:
        open_part = {f: v for f, v in combo.items() if f not in given}
        if open_part not in options:
            options.append(open_part)
    return dict(options[max(member - 1, 0) % len(options)])


@dataclass(frozen=True)
class Choice:
    """A value the rule chose for a field the user left open, and why."""

    field: str
    value: Any
    reason: str
    kind: str  # "config" (NetworkConfig) or "options" (TrainOptions)

    def line(self) -> str:
        return f"default {self.field}={self.value!r}: {self.reason}"


def choose(
    targets: Sequence[str],
    n_train: int,
    recommendation: Mapping[str, Any] | None,
    given_config: Mapping[str, Any],
    sources: Mapping[str, Any] | None = None,
    member: int = 0,
) -> list[Choice]:
    """The rule's choices of the NetworkConfig fields absent from ``given_config``.

    Parameters
    ----------
    targets : sequence of str
        ``COLUMN[:KIND]`` of the run.
    n_train : int
        Structures in the training split.
    recommendation : mapping or None
        The ``mp-audit`` recommendation of the training structures (``r_cut``, ``layers``).
    given_config : mapping
        The NetworkConfig fields the user gave (they are kept).
    sources : mapping, optional
        Unused by the network choices (see :func:`option_choices`).
    member : int
        The run's place in an ensemble (1 … K; 0: a run of its own): members 2 … K vary
        their inputs (:func:`member_inputs`).
    """
    specs = [TargetSpec.parse(t) for t in targets]
    tensors = [s for s in specs if s.kind == "tensor"]
    return _network(specs, tensors, n_train, recommendation, given_config, member)


def option_choices(
    targets: Sequence[str], given_options: Mapping[str, Any], sources: Mapping[str, Any]
) -> list[Choice]:
    """The rule's choices of the TrainOptions absent from ``given_options`` (``sources``:
    ``data`` / ``val`` / ``test``; ``--val`` without ``--test`` trains on all of ``--data``)."""
    out = _options([TargetSpec.parse(t) for t in targets], given_options)
    if sources.get("val") is not None and sources.get("test") is None:
        out.append(Choice("split", (1.0, 0.0, 0.0), "--val given without --test: all of "
                          "--data trains (there is no test split)", "options"))  # fmt: skip
    return [c for c in out if c.field not in given_options]


def _network(
    specs: Sequence[TargetSpec],
    tensors: Sequence[TargetSpec],
    n_train: int,
    rec: Mapping[str, Any] | None,
    given: Mapping[str, Any],
    member: int,
) -> list[Choice]:
    from xtalnet.config import NetworkConfig
    from xtalnet.network import layers_needed, target_lmax

    reasons = {
        ("species_features", "elemental"): "elements enter through their physical "
        "descriptors (rare elements borrow from alike ones)",
        ("species_features", "both"): "elements enter through their physical descriptors "
        "and a free row each (it learns what the descriptors miss)",
        ("composition", True): "composition statistics join the pooled scalars",
        ("composition", False): "the pooled scalars come from the structure alone",
    }
    out = []
    for f, v in member_inputs(member, given, specs).items():
        reason = reasons[f, v]
        if member > 1:  # members that differ in their inputs err less alike than seeds
            reason += f" (ensemble member {member}: the members vary their inputs)"
        out.append(Choice(f, v, reason, "config"))
    ieee = sorted(s.column for s in tensors if s.column in IEEE_TENSOR_COLUMNS)
    frame = "ieee" if ieee else "as_given"
    why = (
        f"{ieee} are stored in the IEEE standard orientation: structures are rotated into it"
        if ieee
        else "no target stored in the IEEE standard orientation"
    )
    out.append(Choice("tensor_frame", frame, why, "config"))
    r_cut = (rec or {}).get("r_cut")
    if r_cut is not None:
        out.append(Choice("r_cut", float(r_cut), "the mp-audit recommendation of the "
                          "training structures", "config"))  # fmt: skip
    known = {k: v for k, v in given.items() if k != "num_layers"}
    probe = NetworkConfig.from_dict({**known, "targets": [str(s) for s in specs]})
    lmax = target_lmax(probe)
    if lmax > probe.l_filter_max and "l_filter_max" not in given:
        why = (
            f"the targets' largest irrep is l = {lmax}: an atom on a cubic site sees its "
            "neighbours first at l = 4 (l = 3 on a tetrahedral one); lower filters predict "
            "the elastic tensors of such crystals isotropic, their piezoelectric tensors zero"
        )
        out.append(Choice("l_filter_max", lmax, why, "config"))
        probe = dataclasses.replace(probe, l_filter_max=lmax)
    fewest = layers_needed(probe)
    audit = (rec or {}).get("layers")
    layers = fewest
    why = f"the fewest that reach the targets' irreps ({n_train} training structures)"
    if audit is not None and int(audit) < fewest:
        why += f"; the audit recommends {audit}, the targets need {fewest}"
    elif audit is not None:
        why += f"; the audit's {audit} is the upper bound"
    out.append(Choice("num_layers", layers, why, "config"))
    return [c for c in out if c.field not in given]


def _options(specs: Sequence[TargetSpec], given: Mapping[str, Any]) -> list[Choice]:
    timed = given.get("time_limit") is not None
    gaps = [s for s in specs if s.kind == "band_gap"]
    out = [
        Choice("lr", 3e-3, "AdamW peak learning rate of the A/B runs", "options"),
        Choice("batch_size", 16, "small batches: more steps on small data", "options"),
        Choice("weight_decay", 0.2, "small data overfit without it", "options"),
        Choice("loss", "l1", "L1 of every irrep copy: the MAE users read, robust to "
               "heavy tails", "options"),
        Choice("select", "mae" if gaps else "loss",
               "a band gap's loss mixes a cross-entropy with the spread of √gap: best.pt by "
               "the validation MAE" if gaps else "best.pt by the validation loss", "options"),
        Choice("ema_decay", 0.99, "the EMA of the weights is validated and saved", "options"),
        Choice("patience", 100_000 if timed else 100,
               "no early stopping: the time limit ends the run (a cosine schedule is planned "
               "to anneal there)" if timed
               else "early stopping after 100 epochs without improvement", "options"),
        Choice("epochs", 100_000 if timed else 300,
               "the time limit decides" if timed else "no time limit given", "options"),
    ]  # fmt: skip
    return [c for c in out if c.field not in given]


def provenance(choices: Sequence[Choice], kind: str, given: Mapping[str, Any]) -> dict[str, str]:
    """``{field: "given" | "rule: <reason>"}`` of one kind, for config.json / options.json."""
    out = {k: "given" for k in given if k not in ("schema", "targets")}
    out.update({c.field: f"rule: {c.reason}" for c in choices if c.kind == kind})
    return out
