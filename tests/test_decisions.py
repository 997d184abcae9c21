"""Decisions a finance team acts on: calibrated probabilities (the layer on every backend,
the fitted maps), thresholds of least cost, the money view and the boosting baselines."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import invoke, one_line_error

from dltoolkit.config import CostConfig, DataConfig, ThresholdConfig
from dltoolkit.errors import DataError
from dltoolkit.tasks.calibration import (
    apply_calibration,
    fit_calibration,
    probability_scores,
    reliability,
)
from dltoolkit.tasks.thresholds import choose_threshold, least_cost_threshold, money_view, row_costs


def overconfident(
    rows: int = 4000, seed: int = 0, scale: float = 2.0, shift: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from true probabilities, and scores that overstate them: the logit
    multiplied by ``scale`` (overconfidence) and moved up by ``shift`` (what balanced class
    weights do to a rare class)."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(-1.0, 1.2, rows)
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return y, 1 / (1 + np.exp(-(scale * logit + shift)))


# === The Calibration layer (every backend) ===


@pytest.mark.parametrize(
    "arguments",
    [
        {"method": "logistic", "transform": "logit", "slope": 0.5, "intercept": -0.3},
        {"method": "logistic", "transform": "log", "slope": 1.7, "intercept": 2.0},
        {
            "method": "isotonic",
            "transform": "logit",
            "knots_x": [-3.0, -1.0, 0.5, 2.0],
            "knots_y": [0.0, 0.1, 0.1, 0.9],
        },
        {"method": "isotonic", "transform": "logit", "knots_x": [0.0], "knots_y": [0.3]},
    ],
)
def test_calibration_layer_matches_numpy_and_round_trips(arguments, tmp_path: Path):
    import keras

    from dltoolkit.layers import Calibration

    scores = np.array([[1e-9], [0.01], [0.2], [0.5], [0.73], [0.99], [1.0]], np.float32)
    if arguments["transform"] == "log":
        scores = np.array([[0.0], [1e-4], [0.02], [0.5], [3.0], [40.0], [1e3]], np.float32)
    inputs = keras.Input((1,))
    model = keras.Model(inputs, Calibration(**arguments, name="calibration")(inputs))
    got = np.asarray(model.predict(scores, verbose=0))
    expected = apply_calibration(arguments, scores)
    np.testing.assert_allclose(got, expected, atol=2e-6)
    assert np.all(np.diff(got[:, 0]) >= -1e-7)  # monotone
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(again.predict(scores, verbose=0)), got, atol=1e-7)
    layer = again.get_layer("calibration")
    assert Calibration.from_config(layer.get_config()).get_config() == layer.get_config()


def test_calibration_layer_refuses_bad_arguments():
    from dltoolkit.layers import Calibration

    with pytest.raises(ValueError, match="Received: slope=-1"):
        Calibration("logistic", slope=-1.0)
    with pytest.raises(ValueError, match="knots must increase"):
        Calibration("isotonic", knots_x=[0.0, 0.0], knots_y=[0.1, 0.2])
    with pytest.raises(ValueError, match="Received: method='beta'"):
        Calibration("beta")


# === Fitted maps ===


@pytest.mark.backend_neutral
@pytest.mark.parametrize("method", ["platt", "temperature", "isotonic"])
def test_fitted_calibrations_are_monotone_and_fix_an_overconfident_model(method: str):
    from sklearn.metrics import roc_auc_score

    # Temperature scaling fixes overconfidence only: it has no intercept to undo a shift.
    shift = 0.0 if method == "temperature" else 1.5
    y_fit, p_fit = overconfident(seed=1, scale=2.5, shift=shift)
    y, p = overconfident(seed=2, scale=2.5, shift=shift)
    arguments = fit_calibration(method, y_fit, p_fit, "logit")
    calibrated = apply_calibration(arguments, p)
    grid = np.linspace(0, 1, 501)
    assert np.all(np.diff(apply_calibration(arguments, grid)) >= 0)
    before = reliability(y, p)["expected_calibration_error"]
    after = reliability(y, calibrated)["expected_calibration_error"]
    assert before > 0.1 and after < 0.04, (before, after)
    if method != "isotonic":  # strictly increasing: the ranking is untouched
        assert roc_auc_score(y, calibrated) == roc_auc_score(y, p)
    if method == "temperature":  # one number: the logit's slope, no shift
        assert arguments["intercept"] == 0.0
        assert arguments["slope"] == pytest.approx(1 / 2.5, abs=0.05)


@pytest.mark.backend_neutral
def test_platt_recovers_the_map_that_miscalibrated_the_scores():
    # Scores 2 * logit + 1 of the true logit: Platt's slope is 1/2, intercept -1/2.
    y, p = overconfident(rows=40_000, seed=3)
    arguments = fit_calibration("platt", y, p, "logit")
    assert arguments["slope"] == pytest.approx(0.5, abs=0.03)
    assert arguments["intercept"] == pytest.approx(-0.5, abs=0.05)


@pytest.mark.backend_neutral
def test_calibration_refuses_what_it_cannot_fit():
    y = np.array([0] * 80 + [1] * 12)
    p = np.linspace(0.01, 0.99, len(y))
    with pytest.raises(DataError, match="found 12 positive and 80 negative"):
        fit_calibration("isotonic", y, p, "logit")
    with pytest.raises(DataError, match="holds 0 positive and 92 negative"):
        fit_calibration("platt", np.zeros(92, np.int64), p, "logit")
    # Scores that rank positives lower: the map is kept increasing, nearly flat at the
    # base rate, with a warning.
    with pytest.warns(UserWarning, match="do not rank the positives"):
        flat = fit_calibration("platt", y, p[::-1], "logit")
    assert 0 < flat["slope"] <= 1e-3
    np.testing.assert_allclose(apply_calibration(flat, p).mean(), y.mean(), atol=0.01)


@pytest.mark.backend_neutral
def test_ece_interval_covers_sampling_noise_of_a_calibrated_model():
    rng = np.random.default_rng(0)
    p = rng.random(200)
    y = (rng.random(200) < p).astype(np.int64)
    scores = probability_scores(y, p)
    low, high = scores["expected_calibration_error_interval"]
    # A perfectly calibrated model on 200 rows: an ECE of several hundredths, from noise.
    assert 0.02 < scores["expected_calibration_error"] < 0.15
    assert low < high and high > 0.05
    # The sort-once bootstrap agrees with resampling and re-binning every draw.
    naive_rng = np.random.default_rng(1)
    naive = [
        reliability(y[rows], p[rows])["expected_calibration_error"]
        for rows in (naive_rng.integers(0, 200, 200) for _ in range(400))
    ]
    assert low == pytest.approx(np.percentile(naive, 5), abs=0.01)
    assert high == pytest.approx(np.percentile(naive, 95), abs=0.015)


# === Costs ===


@pytest.mark.backend_neutral
def test_least_cost_threshold_is_the_one_computed_by_hand():
    y = np.array([0, 1, 0, 1, 0, 0, 1, 0])
    scores = np.array([0.1, 0.9, 0.35, 0.6, 0.6, 0.2, 0.3, 0.8])
    costs = row_costs(y, CostConfig(false_positive=1, false_negative=5), None)
    # Flag score >= t for each cut: cost = 1 per flagged negative + 5 per missed positive.
    by_hand = {}
    for t in [*sorted(set(scores)), 1.0]:
        flagged = scores >= t
        by_hand[t] = 1 * np.sum(flagged & (y == 0)) + 5 * np.sum(~flagged & (y == 1))
    best = min(by_hand.values())
    chosen = least_cost_threshold(scores, costs)
    assert chosen["validation_cost"] == best == 3  # at t = 0.3: three negatives flagged
    assert chosen["threshold"] == max(t for t, cost in by_hand.items() if cost == best)
    config = ThresholdConfig("cost")
    assert choose_threshold(y, scores, config, costs)["threshold"] == pytest.approx(0.3)
    # Reviews so dear that flagging nothing is cheapest: the threshold is above every score.
    dear = row_costs(y, CostConfig(false_negative=5, review=50), None)
    assert least_cost_threshold(scores, dear)["threshold"] > scores.max()


@pytest.mark.backend_neutral
def test_money_view_with_amounts():
    y = np.array([1, 0, 1, 0, 1])
    amounts = np.array([100.0, 20.0, 7.0, 5.0, 50.0])
    scores = np.array([0.9, 0.8, 0.1, 0.2, 0.7])
    costs = row_costs(y, CostConfig(review=2), amounts)
    view = money_view(y, scores, 0.5, costs, "EUR")
    # Three alerts at 2 each; the missed fraud of 7 lets its amount through.
    assert view["total_cost"] == 3 * 2 + 7
    assert view["cost_without_model"] == 157
    assert view["value_caught"] == 150 and view["share_of_value_caught"] == pytest.approx(150 / 157)
    assert view["alerts_per_1000"] == 600 and view["positives_caught"] == 2


@pytest.mark.backend_neutral
def test_amount_column_is_checked_row_by_row(tmp_path: Path):
    from dltoolkit.data.tabular import load_table, split_table

    frame = pd.DataFrame({"x": np.arange(40.0), "amount": np.arange(40.0) * 3, "y": [0, 1] * 20})
    config = DataConfig(label="y", amount_column="amount")
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    splits = split_table(load_table("csv", str(path), config), config, 0, True)
    assert len(splits.amounts["test"]) == len(splits.y_test)
    assert set(splits.amounts["validation"]) <= set(frame["amount"])
    for value, what in [(-3.0, "negative"), ("ten", "not a number")]:
        bad = frame.astype({"amount": object})
        bad.loc[6, "amount"] = value
        bad.to_csv(path, index=False)
        config.features = ["x"]  # the amount need not be a feature
        with pytest.raises(DataError, match=f"row 8 .*which is {what}"):
            split_table(load_table("csv", str(path), config), config, 0, True)
    config.amount_column = "price"
    with pytest.raises(DataError, match=r"has no column 'price' \(data.amount_column\)"):
        split_table(load_table("csv", str(path), config), config, 0, True)


@pytest.mark.backend_neutral
@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--set", "train.costs.false_positive=-1"], "false_positive must be a cost >= 0"),
        (
            ["--set", "train.threshold.objective=cost", "--set", "train.costs.false_negative=0",
             "--set", "train.costs.false_positive=0"],
            "another objective when no cost is set",
        ),
        (["--set", "train.calibration=beta"], "train.calibration must be one of none, platt"),
        (
            ["--set", "train.refit_on_validation=true",
             "--set", "train.early_stopping.patience=null"],
            "none with train.refit_on_validation",
        ),
    ],
)  # fmt: skip
def test_bad_cost_and_calibration_settings_are_one_line(workdir: Path, arguments, expected):
    message = one_line_error(invoke("recipe", "credit-risk", *arguments))
    assert expected in message
    assert not (workdir / "runs").exists()


@pytest.mark.backend_neutral
@pytest.mark.parametrize(
    ("recipe", "arguments", "expected"),
    [
        ("credit-risk",
         ["--set", "train.calibration=isotonic", "--set", "data.validation_split=0.05"],
         "found 15 positive and 35 negative"),
        ("credit-risk", ["--set", "report.fairness_groups=[nationality]"],
         "has no column 'nationality' (report.fairness_groups)"),
        ("credit-risk", ["--set", "report.fairness_groups=[age_in_years<18]"],
         "has no row with age_in_years < 18"),
        ("credit-risk", ["--set", "report.fairness_groups=[age<young]"],
         "is not COLUMN or COLUMN<NUMBER"),
        ("fraud-detection", ["--set", "data.amount_column=Amt"],
         "has no column 'Amt' (data.amount_column) (did you mean \"Amount\"?)"),
        ("mlp-regression", ["--set", "train.costs.review=2"],
         "train.costs must be unset for task regression"),
    ],
)  # fmt: skip
def test_bad_decision_data_is_one_line_before_training(workdir: Path, recipe, arguments, expected):
    message = one_line_error(invoke("recipe", recipe, *arguments))
    assert expected in message, message
    assert not (workdir / "runs").exists()


@pytest.mark.backend_neutral
@pytest.mark.parametrize(
    ("recipe", "expected"),
    [
        ("mlp-regression", "for task regression (its outputs are not probabilities)"),
        ("stock-forecast", "for task forecasting (its outputs are not probabilities)"),
    ],
)
def test_calibration_is_refused_where_there_is_no_probability(workdir, recipe, expected):
    message = one_line_error(invoke("recipe", recipe, "--set", "train.calibration=platt"))
    assert "train.calibration must be none" in message and expected in message, message


@pytest.mark.backend_neutral
def test_anomaly_scores_have_no_temperature(workdir: Path):
    message = one_line_error(
        invoke("recipe", "fraud-anomaly", "--set", "train.calibration=temperature")
    )
    assert "one of none, platt, isotonic for task anomaly" in message


# === Boosting baselines ===


@pytest.mark.backend_neutral
@pytest.mark.parametrize("library", ["lightgbm", "xgboost"])
def test_boosting_baseline_stops_early_on_validation(library: str):
    pytest.importorskip(library)
    from sklearn.metrics import roc_auc_score

    from dltoolkit.tasks.boosting import MAX_TREES, EarlyStopped

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] ** 2 + rng.normal(0, 1.0, 3000) > 0.8).astype(np.int64)
    model = EarlyStopped(library, x[2000:2500], y[2000:2500], "balanced", seed=0).fit(
        x[:2000], y[:2000]
    )
    p = model.predict_proba(x[2500:])[:, 1]
    assert roc_auc_score(y[2500:], p) > 0.8
    assert 1 <= model.trees < MAX_TREES  # noisy labels: stopped long before the cap
    most = {"lightgbm": 31, "xgboost": 64}[library]  # default leaves (depth 6) per tree
    assert model.trees <= model.leaves <= most * model.trees


# === Scorecard points and fairness ===


@pytest.mark.backend_neutral
def test_scorecard_points_follow_the_formula():
    from dltoolkit.config import ScorecardConfig
    from dltoolkit.tasks.scorecard import points, scale

    points_scale = scale(ScorecardConfig(base_score=600, base_odds=50, points_to_double_odds=20))
    # Odds of 50:1 (p = 1/51) score the base; doubling the odds adds 20 points.
    assert points(np.array([1 / 51]), points_scale)[0] == pytest.approx(600)
    assert points(np.array([1 / 101]), points_scale)[0] == pytest.approx(620)
    assert points(np.array([1 / 26]), points_scale)[0] == pytest.approx(580)
    p = np.array([0.3, 0.02, 0.6])
    by_hand = 600 - 20 * np.log2(50) + 20 / np.log(2) * np.log((1 - p) / p)
    np.testing.assert_allclose(points(p, points_scale), by_hand)


@pytest.mark.backend_neutral
def test_disparate_impact_of_a_hand_made_table():
    from dltoolkit.tasks.fairness import audit, group_labels

    ages = pd.Series([22, 23, 24, 30, 40, 50, 60, 35, 45, 24])
    labels = group_labels(ages, "age<25", "hand-made")
    assert labels.tolist().count("age < 25") == 4
    y = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 1])
    flagged = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0, 1], bool)
    found = audit(y, flagged, labels)
    young, old = found["groups"]["age < 25"], found["groups"]["age >= 25"]
    assert young["approval_rate"] == pytest.approx(1 / 4)  # 3 of 4 flagged
    assert old["approval_rate"] == pytest.approx(5 / 6)
    assert young["disparate_impact"] == pytest.approx((1 / 4) / (5 / 6))
    assert young["true_positive_rate"] == 1.0 and young["false_positive_rate"] == pytest.approx(0.5)
    assert found["violations"] == ["age < 25"] and found["most_approved"] == "age >= 25"
    with pytest.raises(DataError, match="has no row with age < 18"):
        group_labels(ages, "age<18", "hand-made")
