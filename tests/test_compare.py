"""The compare command: paired comparison of two runs' per-text predictions."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stages.common.errors import UserError
from stages.compare import Side, compare, render_markdown, render_text
from tests.conftest import copy_repo, run


def sides(n: int = 200, seed: int = 0) -> tuple[Side, Side]:
    rng = np.random.default_rng(seed)
    gold = rng.choice(["neg", "pos", "neu"], size=n).tolist()
    weak = [g if rng.random() < 0.6 else "neg" for g in gold]
    strong = [g if rng.random() < 0.9 else w for g, w in zip(gold, weak)]
    texts = [f"text {i}" for i in range(n)]
    return Side("HEAD", texts, gold, weak), Side("workspace", texts, gold, strong)


def test_a_clearly_better_run_gets_a_verdict_and_both_formats():
    a, b = sides()
    result = compare(a, b, "valid")
    assert result.macro_f1.difference > 0 and result.macro_f1.low > 0
    text = render_text(result)
    assert "verdict: workspace is better than HEAD by" in text and "McNemar" in text
    assert len(text.splitlines()) <= 10 and max(len(line) for line in text.splitlines()) < 120
    markdown = render_markdown(result)
    assert markdown.count("\n|") >= 4 and "**Verdict:** B is better than A by" in markdown


def test_different_texts_or_labels_are_refused_with_the_reason():
    a, b = sides()
    other = Side("exp-x", b.texts[:150] + [f"new {i}" for i in range(50)], b.gold, b.predicted)
    with pytest.raises(UserError, match=r"valid texts differ: HEAD has 200, exp-x has 200, 150 in common"):
        compare(a, other, "valid")
    flipped = "pos" if a.gold[0] != "pos" else "neg"
    relabelled = Side("exp-y", b.texts, [flipped] + b.gold[1:], b.predicted)
    with pytest.raises(UserError, match=r"gold labels differ \(first at row 1"):
        compare(a, relabelled, "valid")


def test_regression_and_multi_label_predictions_are_refused_not_miscounted(tmp_path):
    """Joined label sets are not classes and scores are not labels: compare points to `dvc metrics diff`."""
    from stages.compare import load_side

    base = {"split": ["valid"] * 3, "text": ["a", "b", "c"]}
    files = {
        "softmax": {**base, "gold": ["x", "y", "x"], "predicted": ["x", "y", "y"], "p_x": [0.7, 0.2, 0.4],
                    "p_y": [0.3, 0.8, 0.6]},
        "regression": {**base, "gold": ["1.5", "2.0", "3.5"], "predicted": ["1.4", "2.2", "3.1"]},
        "multi": {**base, "gold": ["x|y", "", "y"], "predicted": ["x|y", "y", "y"], "p_x": [0.9, 0.1, 0.2],
                  "p_y": [0.8, 0.6, 0.7]},
    }
    for name, columns in files.items():
        pd.DataFrame(columns).to_csv(tmp_path / f"{name}.csv", index=False)
    assert load_side(str(tmp_path / "softmax.csv"), "workspace", "valid").predicted == ["x", "y", "y"]
    with pytest.raises(UserError, match="from a regression run .* use `dvc metrics diff`"):
        load_side(str(tmp_path / "regression.csv"), "workspace", "valid")
    with pytest.raises(UserError, match="from a multi-label run"):
        load_side(str(tmp_path / "multi.csv"), "workspace", "valid")


@pytest.mark.slow
def test_compare_revisions_experiments_and_refuse_other_data(sample_run, tmp_path):
    repo = copy_repo(sample_run.repo, tmp_path / "repo")
    same = run(["python", "-m", "stages.compare"], repo)  # HEAD vs the (unchanged) workspace
    assert "+0.0000" in same.stdout and "no detectable difference" in same.stdout
    # Up to evaluate only: compare reads predictions.csv, and submit / package would add a minute of nothing here.
    run(["dvc", "exp", "run", "evaluate", "-S", "train.epochs=1", "--name", "one-epoch"], repo)
    result = run(["python", "-m", "stages.compare", "HEAD", "one-epoch"], repo)
    assert "verdict: " in result.stdout and "one-epoch" in result.stdout
    head = pd.read_csv(repo / "data/eval/predictions.csv")  # the workspace still holds HEAD's outputs
    assert f"{len(head[head['split'] == 'valid'])} texts" in result.stdout
    md = run(["python", "-m", "stages.compare", "HEAD", "one-epoch", "--md"], repo)
    assert md.stdout.startswith("**valid** split") and "| B − A |" in md.stdout
    # Other data in the workspace (as after a new CSV or split seed: the unit tests cover the rules; this is the
    # command's path): some valid texts differ, so a paired comparison must refuse.
    predictions = repo / "data/eval/predictions.csv"
    frame = pd.read_csv(predictions, dtype=str, keep_default_na=False)
    valid_rows = frame.index[frame["split"] == "valid"][:5]
    frame.loc[valid_rows, "text"] = [f"別のデータ{i}" for i in range(len(valid_rows))]
    frame.to_csv(predictions, index=False)
    refused = run(["python", "-m", "stages.compare", "HEAD", "workspace"], repo, check=False)
    assert refused.returncode == 2
    assert refused.stderr.strip().startswith("error: the valid texts differ: HEAD has")
    assert len(refused.stderr.strip().splitlines()) == 1
    unknown = run(["python", "-m", "stages.compare", "no-such-rev"], repo, check=False)
    assert unknown.returncode == 2 and "'no-such-rev': not a git revision" in unknown.stderr
