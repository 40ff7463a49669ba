#!/usr/bin/env bash
# Results on real data with the DEFAULTS (issue 18, docs/RESULTS.md "Results"): every row is
# `xtalnet train` with nothing but the data, the targets, a wall-clock budget and, where shown,
# --ensemble / --init; beside each, what a user would try first on the same split: the mean
# predictor and a composition random forest (benchmarks/baselines.py, scikit-learn).
#
#   DATA=/path/to/shared/data OUT=/path/to/results bash benchmarks/results.sh [JOB ...]
#
# JOB: mp20_formation mp20_formation_ensemble mp20_band_gap mp20_band_gap_ensemble elastic
# dielectric piezo finetune (default: all, one after the other). Each run writes its folder
# under $OUT, its log $OUT/<job>.log and $OUT/<job>/baselines.json.
# THREADS (default 1): torch threads per run, so that two jobs can share 2 cores.
# The MP-20 ensembles are also scored on mp20/extra.csv (243 MP-20 rows in no split):
# `xtalnet evaluate`, $OUT/<job>_extra/metrics.json (142 test rows rank errors by σ loosely).
set -euo pipefail
DATA=${DATA:-${XTAL_SHARED_DATA:?set DATA or XTAL_SHARED_DATA to the shared data folder}}
OUT=${OUT:-results}
THREADS=${THREADS:-1}
PYTHON=${PYTHON:-python}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$OUT"

run() {  # run NAME ARGS...: one training with the defaults, its log and its baselines
    local name=$1; shift
    echo "== $name: xtalnet train $* --out $OUT/$name"
    $PYTHON -m xtalnet train "$@" --out "$OUT/$name" --threads "$THREADS" --overwrite \
        --no-progress > "$OUT/$name.log" 2>&1
    grep -E "^test|ensemble MAE" "$OUT/$name.log" || true
    OMP_NUM_THREADS=$THREADS $PYTHON "$HERE/baselines.py" "$OUT/$name"
}

extra() {  # extra NAME: the run scored on the 243 MP-20 rows of no split
    $PYTHON -m xtalnet evaluate --checkpoint "$OUT/$1" --data "$DATA/mp20/extra.csv" \
        --out "$OUT/$1_extra" --threads "$THREADS" --quiet
    $PYTHON -c 'import json, sys; print("extra.csv:", json.load(open(sys.argv[1]))["metrics"])' \
        "$OUT/$1_extra/metrics.json"
}

MP20=(--data "$DATA/mp20/train.csv" --val "$DATA/mp20/val.csv" --test "$DATA/mp20/test.csv")
DEJONG="$DATA/elastic/matminer_elastic_tensor_2015.csv.gz"

mp20_formation() { run mp20_formation "${MP20[@]}" --target formation_energy_per_atom \
    --time-limit "${MINUTES:-18}"; }
mp20_formation_ensemble() { run mp20_formation_ensemble "${MP20[@]}" \
    --target formation_energy_per_atom --ensemble 5 --time-limit "${MEMBER_MINUTES:-4}"
    extra mp20_formation_ensemble; }
mp20_band_gap() { run mp20_band_gap "${MP20[@]}" --target band_gap --time-limit "${MINUTES:-18}"; }
mp20_band_gap_ensemble() { run mp20_band_gap_ensemble "${MP20[@]}" --target band_gap \
    --ensemble 5 --time-limit "${MEMBER_MINUTES:-4}"
    extra mp20_band_gap_ensemble; }
elastic() { run elastic --data "$DEJONG" --target elastic_tensor --target K_VRH --target G_VRH \
    --time-limit "${MINUTES:-18}"; }
dielectric() { run dielectric --data "$DATA/mp_other/matminer_dielectric_constant.csv.gz" \
    --target e_total --time-limit "${MINUTES:-10}"; }
piezo() { run piezo --data "$DATA/tensors/matminer_piezoelectric_tensor.csv.gz" \
    --target piezoelectric_tensor --time-limit "${MINUTES:-10}"; }

# fine-tuning: the formation-energy trunk (mp20_formation) on the de Jong moduli, beside the
# same run from scratch, same budget (needs the mp20_formation run first)
finetune() {
    run moduli_scratch --data "$DEJONG" --target K_VRH --target G_VRH \
        --time-limit "${FT_MINUTES:-5}"
    run moduli_finetuned --data "$DEJONG" --target K_VRH --target G_VRH \
        --init "$OUT/mp20_formation" --time-limit "${FT_MINUTES:-5}"
}

jobs=("$@")
[ ${#jobs[@]} -eq 0 ] && jobs=(mp20_formation mp20_formation_ensemble mp20_band_gap
    mp20_band_gap_ensemble elastic dielectric piezo finetune)
for j in "${jobs[@]}"; do "$j"; done
