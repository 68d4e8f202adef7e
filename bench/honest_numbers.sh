#!/bin/bash
# The runs of docs/results.md "honest numbers": chABSA with intervals, a paired comparison of two runs, the
# refusal on other data, 5-fold CV on toxic. Usage: bash bench/honest_numbers.sh [project dir] (about 25 min on
# 2 cores; SHARED= the folder of the shared datasets, OUT= where the throwaway copies go)
SRC=$(cd "${1:-.}" && pwd); SHARED=$(cd "${SHARED:-$SRC/../shared/data}" && pwd); OUT=${OUT:-/tmp/honest-numbers}
export PATH=$SRC/.venv/bin:$PATH HF_HUB_OFFLINE=1
mk() {  # a git+dvc copy of the project at $1 with data.train_csv $2
  if [ -e "$1" ] && [ ! -e "$1/.honest-numbers" ]; then echo "error: $1 exists and was not made by this script" >&2; exit 2; fi
  rm -rf "$1" && mkdir -p "$1" && touch "$1/.honest-numbers" && (cd $SRC && git ls-files -z | xargs -0 -I{} cp --parents {} $1/) && cd $1 && rm -f dvc.lock
  python - "$2" <<'PY'
import sys, yaml
p = yaml.safe_load(open("params.yaml")); p["data"]["train_csv"] = sys.argv[1]
yaml.safe_dump(p, open("params.yaml", "w"), allow_unicode=True, sort_keys=False)
PY
  git init -q && git add -A && git commit -qm init
}
echo "== 1. chABSA default run"; date
mk $OUT/chabsa $SHARED/chabsa_sentiment/data.csv
/usr/bin/time -f "chabsa dvc repro: %e s" dvc repro -q
cat data/eval/metrics.json; python -m stages.evaluate --summary
git add -A && git commit -qm "chabsa default run"
echo "== 2. chABSA: learning-rate experiment and compare"; date
/usr/bin/time -f "chabsa exp run: %e s" dvc exp run -q -S train.learning_rate=0.0002 --name lr-2e-4
python -m stages.compare HEAD lr-2e-4
python -m stages.compare HEAD lr-2e-4 --md
echo "== 3. chABSA: an experiment on other data, compare must refuse"; date
/usr/bin/time -f "other-data exp run: %e s" dvc exp run -q -S data.train_csv=$SHARED/ja_toxic_inspection/data.csv --name other-data
python -m stages.compare HEAD other-data; echo "exit $?"
echo "== 4. toxic: 5-fold"; date
mk $OUT/toxic $SHARED/ja_toxic_inspection/data.csv
/usr/bin/time -f "toxic dvc repro: %e s" dvc repro -q
git add -A && git commit -qm "toxic default run"
/usr/bin/time -f "toxic 5-fold dvc repro: %e s" dvc exp run -S split.folds=5 -S 'split.fold_ids=[1,2,3,4,5]' --name cv5 > $OUT/cv5.log 2>&1
grep -E "Running stage|didn't change|cv_evaluate:" $OUT/cv5.log
dvc exp apply cv5 >/dev/null && cat data/cv_eval/metrics.json
echo "-- second dvc repro:"; dvc repro 2>&1 | grep -E "Running stage|up to date" | head
python - <<'PY'
import yaml; p = yaml.safe_load(open("params.yaml")); p["train"]["epochs"] = 3
yaml.safe_dump(p, open("params.yaml", "w"), allow_unicode=True, sort_keys=False)
PY
echo "-- after train.epochs 3, dvc status lists:"; dvc status | grep -E "^[a-z_@0-9]+:"
echo "-- dvc exp show:"; dvc exp show --no-pager --csv 2>/dev/null | cut -d, -f1-3,$(dvc exp show --no-pager --csv 2>/dev/null | head -1 | tr , '\n' | grep -n "oof_macro_f1$" | cut -d: -f1) | head -8
date
