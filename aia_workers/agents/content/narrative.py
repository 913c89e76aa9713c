"""Plain-language Markdown from an analysis output: the numbers that matter, stated."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aia_workers.agents.content.render import inline

__all__ = ["analysis_markdown", "number"]

# Every sentence starts with a capitalised word, not a column name, so that the
# sentence splitter (which wants a capital after a full stop) finds its end.
# Correlations weaker than this are not worth a sentence.
_NOTABLE_R = 0.3
_MAX_PAIRS = 3
_MAX_OUTLIER_COLUMNS = 5


def number(value: Any) -> str:
    """``value`` to four significant digits (2.998, 0.0123, 1.235e+05); "n/a" when missing."""
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return inline(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def analysis_markdown(analysis: Mapping[str, Any]) -> str:
    """The analysis as Markdown paragraphs and a table, one subsection per part present."""
    blocks: list[str] = []
    dataset, rows = analysis.get("dataset_id"), analysis.get("rows")
    columns = analysis.get("columns") or {}
    if dataset is not None or rows is not None:
        blocks.append(
            f"The dataset {inline(dataset or '')} has {number(rows)} rows; "
            f"{len(columns)} column{'s' if len(columns) != 1 else ''} analysed."
        )
    table = _statistics_table(columns)
    if table:
        blocks += ["### Columns", table]
    for title, render in (
        ("Correlations", _correlations),
        ("Outliers", _outliers),
        ("Trend and seasonality", _trend),
        ("Regression", _regression),
    ):
        text = render(analysis)
        if text:
            blocks += [f"### {title}", text]
    return "\n\n".join(blocks)


def _statistics_table(columns: Mapping[str, Any]) -> str:
    numeric = {k: v for k, v in columns.items() if isinstance(v, Mapping) and "mean" in v}
    if not numeric:
        return ""
    lines = [
        "| column | count | missing | mean | std | min | median | max |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, s in numeric.items():
        cells = [s.get(k) for k in ("count", "missing", "mean", "std", "min", "median", "max")]
        lines.append(f"| {inline(name)} | " + " | ".join(number(c) for c in cells) + " |")
    return "\n".join(lines)


def _strength(r: float) -> str:
    size = abs(r)
    return "strongly" if size >= 0.7 else "moderately" if size >= 0.4 else "weakly"


def _correlations(analysis: Mapping[str, Any]) -> str:
    pairs = (analysis.get("correlations") or {}).get("strongest_pairs") or []
    notable = [p for p in pairs if p.get("pearson") is not None and abs(p["pearson"]) >= _NOTABLE_R]
    if not pairs:
        return ""
    if not notable:
        return f"No two numeric columns are correlated beyond |r| = {_NOTABLE_R}."
    sentences = []
    for pair in notable[:_MAX_PAIRS]:
        a, b = (inline(c) for c in pair["columns"])
        r = pair["pearson"]
        sign = "positively" if r > 0 else "negatively"
        spearman = pair.get("spearman")
        rho = f", Spearman rho = {number(spearman)}" if spearman is not None else ""
        sentences.append(
            f"Columns {a} and {b} are {_strength(r)} {sign} correlated "
            f"(Pearson r = {number(r)}{rho}, n = {number(pair.get('n'))})."
        )
    return " ".join(sentences)


def _outliers(analysis: Mapping[str, Any]) -> str:
    found = {
        name: o
        for name, o in (analysis.get("outliers") or {}).items()
        if isinstance(o, Mapping) and o.get("count")
    }
    if not found:
        return "No column has values outside its outlier fences." if "outliers" in analysis else ""
    sentences = []
    for name, o in list(found.items())[:_MAX_OUTLIER_COLUMNS]:
        method = "IQR fences" if o.get("method") == "iqr" else "MAD-based limits"
        worst = (o.get("rows") or [None])[0]
        extreme = (
            f"; the most extreme is {number(worst['value'])} in row {number(worst['row'])}"
            if worst
            else ""
        )
        count = o["count"]
        sentences.append(
            f"Column {inline(name)} has {count} outlier{'s' if count != 1 else ''} outside its "
            f"{method} [{number(o.get('lower'))}, {number(o.get('upper'))}]{extreme}."
        )
    return " ".join(sentences)


def _trend(analysis: Mapping[str, Any]) -> str:
    trend = analysis.get("trend")
    if not isinstance(trend, Mapping):
        return ""
    unit = "day" if trend.get("time_unit") == "day" else "unit of " + inline(trend["time_column"])
    sentences = []
    for name, s in (trend.get("series") or {}).items():
        if "trend" not in s:
            continue
        t = s["trend"]
        if t["direction"] == "flat":
            sentences.append(f"Column {inline(name)} shows no clear trend.")
        else:
            word = "upward" if t["direction"] == "up" else "downward"
            sentences.append(
                f"Column {inline(name)} trends {word} by {number(t['slope_per_step'])} per step "
                f"({number(t['slope'])} per {unit}), from {number(t['start']['value'])} to "
                f"{number(t['end']['value'])}."
            )
        season = s.get("seasonality") or {}
        if season.get("period"):
            sentences.append(
                f"It repeats a season of {number(season['period'])} steps "
                f"(seasonal strength {number(season.get('strength'))}, amplitude "
                f"{number(season.get('amplitude'))})."
            )
    return " ".join(sentences)


def _p(p: float | None) -> str:
    if p is None:
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3g}"


def _regression(analysis: Mapping[str, Any]) -> str:
    reg = analysis.get("regression")
    if not isinstance(reg, Mapping):
        return ""
    target = inline(reg["target"])
    alpha = reg.get("alpha") or 0.05
    level = f"{(1 - alpha) * 100:g}%"
    r2 = reg.get("r_squared")
    share = f"{r2 * 100:.1f}% of its variance" if isinstance(r2, int | float) else "its variance"
    predictors = ", ".join(inline(p) for p in reg.get("predictors") or [])
    sentences = [
        f"A least-squares regression of {target} on {predictors} over {number(reg.get('n'))} "
        f"rows explains {share} (R² = {number(r2)}, adjusted R² = "
        f"{number(reg.get('adj_r_squared'))})."
    ]
    terms = [c for c in reg.get("coefficients") or [] if c.get("term") != "const"]
    quiet = []
    for c in terms:
        if not c.get("significant"):
            quiet.append(f"{inline(c['term'])} ({_p(c.get('p_value'))})")
            continue
        term = str(c["term"])
        interval = (
            f"{level} CI {number(c.get('ci_low'))} to {number(c.get('ci_high'))}, "
            f"{_p(c.get('p_value'))}"
        )
        if "=" in term:
            column, level_name = term.split("=", 1)
            sentences.append(
                f"Rows where {inline(column)} is {inline(level_name)} differ in {target} by "
                f"{number(c['coefficient'])} from the reference level ({interval})."
            )
        else:
            sentences.append(
                f"Each unit increase in {inline(term)} changes {target} by "
                f"{number(c['coefficient'])} ({interval})."
            )
    if quiet:
        sentences.append(f"Not significant at the {alpha * 100:g}% level: {', '.join(quiet)}.")
    return " ".join(sentences)
