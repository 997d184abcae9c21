"""The report's tables of classes and decisions: per-class scores and the most confused
classes, what decisions cost in money, how calibrated the probabilities are before and
after calibration, and the fairness audit, for the network and every baseline, where the
run has them."""

from __future__ import annotations

import html
import math
from typing import Any


def number_cell(value: Any) -> str:
    """A value as a table cell: numbers to four significant figures, escaped text."""
    if isinstance(value, bool) or value is None:
        return html.escape(str(value))
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return html.escape(str(value))


def models_of(metrics: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, test scores) of the network and every baseline."""
    models = [("network", metrics.get("test", {}))]
    return models + [(b["name"], b.get("test", {})) for b in metrics.get("baselines", [])]


def _table(corner: str, models: list[tuple[str, Any]], rows: list[tuple[str, Any]]) -> str:
    """A table of one column per model; ``rows``: (label, model's value -> cell)."""
    head = "".join(f"<th>{html.escape(name)}</th>" for name, _ in models)
    body = "".join(
        f"<tr><th>{html.escape(label)}</th>"
        + "".join(f"<td>{number_cell(cell(value))}</td>" for _, value in models)
        + "</tr>"
        for label, cell in rows
    )
    return f"<table><tr><th>{html.escape(corner)}</th>{head}</tr>{body}</table>"


def class_tables(metrics: dict[str, Any]) -> list[str]:
    """Per-class precision, recall and F1 of the network, and its commonest mistakes (the
    most confused class pairs), where the run has classes scored that way."""
    test = metrics.get("test", {})
    per_class = test.get("per_class")
    if not per_class:
        return []
    names = metrics.get("data", {}).get("class_names") or []
    names = names or [str(index) for index in range(len(per_class["f1"]))]
    keys = ("precision", "recall", "f1", "support")
    head = "".join(f"<th>{key}</th>" for key in keys)
    body = "".join(
        f"<tr><th>{html.escape(name)}</th>"
        + "".join(f"<td>{number_cell(per_class[key][index])}</td>" for key in keys)
        + "</tr>"
        for index, name in enumerate(names)
    )
    sections = [
        "<h2>Per class (network, test)</h2>",
        f"<table><tr><th>class</th>{head}</tr>{body}</table>",
    ]
    mistakes = test.get("most_confused") or []
    if mistakes:
        rows = "".join(
            f"<tr><td>{html.escape(names[m['true']])}</td><td>{html.escape(names[m['predicted']])}"
            f"</td><td>{number_cell(m['rows'])}</td><td>{number_cell(m['share'])}</td></tr>"
            for m in mistakes
        )
        sections += [
            "<h3>Most confused classes</h3>",
            "<table><tr><th>true class</th><th>predicted as</th><th>test rows</th>"
            f"<th>share of the true class</th></tr>{rows}</table>",
        ]
    return sections


def decision_tables(metrics: dict[str, Any]) -> list[str]:
    """The money view, the probabilities before and after calibration, and the fairness
    audit, for the network and every baseline, where the run has them."""
    models = models_of(metrics)
    sections = []
    if "money" in metrics.get("test", {}):
        currency = metrics["test"]["money"].get("currency") or ""
        money = [(name, scores.get("money", {})) for name, scores in models]
        keys = [
            ("total cost", "total_cost"),
            ("cost with no model (everything let through)", "cost_without_model"),
            ("saving", "saving"),
            ("alerts per 1,000 rows", "alerts_per_1000"),
            ("positives caught", "positives_caught"),
            ("value of positives caught", "value_caught"),
            ("share of that value", "share_of_value_caught"),
        ]
        rows = [(label, lambda view, key=key: view.get(key)) for label, key in keys]
        rows = [row for row in rows if any(row[1](view) is not None for _, view in money)]
        sections += [
            f"<h2>What the decisions cost{f' ({html.escape(currency)})' if currency else ''}</h2>",
            _table("test split, each at its validation threshold", money, rows),
        ]
    if "before_calibration" in metrics.get("test", {}) or "calibration" in metrics:
        method = metrics.get("calibration", {}).get("method", "")

        def before(key: str) -> Any:
            return lambda scores: scores.get("before_calibration", {}).get(key)

        def after(key: str) -> Any:
            return lambda scores: scores.get(key)

        rows = [
            (f"{label} {when}", pick(key))
            for key, label in (
                ("expected_calibration_error", "ECE"),
                ("brier", "Brier"),
                ("log_loss", "log loss"),
            )
            for when, pick in (("before", before), (f"after {method}", after))
        ]
        sections += [
            "<h2>Are the probabilities calibrated</h2>",
            _table("test split", models, rows),
            "<p class='meta'>On a few hundred test rows a perfectly calibrated model shows an "
            "ECE of several hundredths from sampling alone; the pooled out-of-fold figures of "
            "a cross-validation (metrics.json) are steadier.</p>",
        ]
    for spec, audits in metrics.get("fairness", {}).items():
        names = list(audits)
        groups = list(next(iter(audits.values()))["groups"])
        rows = []
        for group in groups:
            for label, key in (("approval", "approval_rate"), ("impact", "disparate_impact")):
                rows.append((f"{group}: {label}", lambda a, g=group, k=key: a["groups"][g][k]))
        broken = [
            f"{n} ({', '.join(audits[n]['violations'])})" for n in names if audits[n]["violations"]
        ]
        note = (
            "Four-fifths rule broken (approval rate under 0.8 of the most approved group's): "
            + "; ".join(broken)
            if broken
            else "No group is approved at under four fifths of the most approved group's rate."
        )
        sections += [
            f"<h2>Fairness by {html.escape(spec)}</h2>",
            _table("test split", list(audits.items()), rows),
            f"<p class='{'warn' if broken else 'ok'}'>{html.escape(note)}</p>",
        ]
    return sections
