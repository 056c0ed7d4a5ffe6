"""The baselines of `task: binary_classification` (training/baselines.py): what the boosted model
is measured against on the same rows.

logistic_regression  scikit-learn: median-imputed, standardised model features, class-weighted
                     (`balanced`) L2 logistic regression; lbfgs, deterministic.
rules                the hand-written kind of fraud rule: flag a row when any chosen feature exceeds
                     its threshold (e.g. amount, payments in the last day). Features and thresholds
                     are chosen greedily on the training rows to minimise the tenant's expected cost
                     (or maximise F1 without costs); its score is the number of rules a row trips.

Both are scored by training/metrics.py's classification_metrics, so the threshold and expected cost
are chosen on the validation rows exactly as the model's are.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlplatform.training.baselines import BaselineInputs, NotApplicable

# candidate rule thresholds: training quantiles, denser in the upper tail where rare positives sit
RULE_QUANTILES = 1.0 - np.geomspace(0.3, 0.0005, 60)
DEFAULT_MAX_RULES = 2


def _matrix(inputs: BaselineInputs, frame) -> np.ndarray:
    x = frame[inputs.cfg.model.features].to_numpy(np.float64)
    x[~np.isfinite(x)] = np.nan
    return x


def _labels(inputs: BaselineInputs, frame) -> np.ndarray:
    return frame[inputs.cfg.data.label].to_numpy().astype(np.int64)


class LogisticRegressionBaseline:
    name = "logistic_regression"
    description = ("logistic regression (scikit-learn) on the model's features: median-imputed, standardised, "
                   "class-weighted")

    def evaluate(self, inputs: BaselineInputs) -> tuple[dict[str, float], dict[str, Any]]:
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        y = _labels(inputs, inputs.train_df)
        if len(np.unique(y)) < 2:
            raise NotApplicable("the training rows hold one class only")
        model = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
                              LogisticRegression(class_weight="balanced", max_iter=2000))
        model.fit(_matrix(inputs, inputs.train_df), y)
        scores = model.predict_proba(_matrix(inputs, inputs.valid_df))[:, 1]
        coef = model[-1].coef_[0]
        return inputs.metrics(scores), {
            "coefficients": dict(zip(inputs.cfg.model.features, map(float, coef))),
            "iterations": int(model[-1].n_iter_[0])}


def _objective(inputs: BaselineInputs, y: np.ndarray, flagged: np.ndarray) -> np.ndarray:
    """Lower is better, for each row of `flagged` (candidate rules x rows): expected cost per event
    with the tenant's costs, else -F1."""
    pos = y == 1
    tp = flagged[:, pos].sum(axis=1)
    fp = flagged[:, ~pos].sum(axis=1)
    costs = inputs.cfg.metrics.costs
    if costs:
        return ((pos.sum() - tp) * costs.false_negative + fp * costs.false_positive) / len(y)
    return -2 * tp / np.maximum(2 * tp + fp + (pos.sum() - tp), 1)


def choose_rules(inputs: BaselineInputs) -> dict[str, float]:
    """Feature -> threshold, chosen greedily on the training rows: each step adds the feature and
    threshold that lower the objective most, until none does or the rules are used up."""
    cfg = inputs.cfg
    listed = cfg.model.baselines.rule_features
    candidates = listed or cfg.model.features
    y = _labels(inputs, inputs.train_df)
    frame = inputs.train_df
    fired = np.zeros(len(y), dtype=bool)
    best = float(_objective(inputs, y, fired[None, :])[0])
    rules: dict[str, float] = {}
    for _ in range(len(listed) or DEFAULT_MAX_RULES):
        step = None
        for feature in candidates:
            if feature in rules:
                continue
            x = frame[feature].to_numpy(np.float64)
            finite = x[np.isfinite(x)]
            if finite.size == 0:
                continue
            thresholds = np.unique(np.quantile(finite, RULE_QUANTILES))
            with np.errstate(invalid="ignore"):
                flagged = fired[None, :] | (x[None, :] > thresholds[:, None])
            values = _objective(inputs, y, flagged)
            i = int(np.argmin(values))
            if values[i] < best - 1e-12 and (step is None or values[i] < step[0]):
                step = (float(values[i]), feature, float(thresholds[i]))
        if step is None:
            break
        best, feature, threshold = step
        rules[feature] = threshold
        with np.errstate(invalid="ignore"):
            fired |= frame[feature].to_numpy(np.float64) > threshold
    return rules


class RulesBaseline:
    name = "rules"
    description = ("threshold rules (flag when a feature exceeds its threshold, e.g. amount or payments per day), "
                   "features and thresholds chosen on the training rows for the lowest expected cost")

    def evaluate(self, inputs: BaselineInputs) -> tuple[dict[str, float], dict[str, Any]]:
        if len(np.unique(_labels(inputs, inputs.train_df))) < 2:
            raise NotApplicable("the training rows hold one class only")
        rules = choose_rules(inputs)
        scores = np.zeros(len(inputs.valid_df))
        with np.errstate(invalid="ignore"):
            for feature, threshold in rules.items():
                scores += inputs.valid_df[feature].to_numpy(np.float64) > threshold
        objective = "expected cost" if inputs.cfg.metrics.costs else "F1"
        return inputs.metrics(scores), {"rules": rules, "chosen_on": f"training rows, lowest {objective}",
                                        "score": "number of rules tripped"}


BASELINES = (LogisticRegressionBaseline(), RulesBaseline())


def baselines(cfg) -> list:
    """The task's baselines (the same two for every classification tenant)."""
    return list(BASELINES)
