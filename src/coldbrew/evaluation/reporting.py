"""The evaluation report: coldbrew and baselines on one split, as markdown, JSON and a plot.

``run_report`` is what ``coldbrew evaluate`` calls. Protocol: a global temporal split; every
model is fitted on the earlier events with the items seen in them, told about the other items
with ``add_items``, then evaluated through the same metric code on the segments of
:func:`coldbrew.evaluation.protocol.temporal_segments`: warm users, new items, and new users
with ``n`` revealed events for each requested ``n`` (the same users for every ``n``, so the
curve of NDCG against ``n`` — the cold-start curve — compares like with like).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from coldbrew.config import FitConfig
from coldbrew.data.catalog import Catalog
from coldbrew.data.events import Events
from coldbrew.errors import ConfigError

__all__ = ["BASELINE_NAMES", "ReportConfig", "cold_start_curve", "parse_reveal", "render_markdown", "run_report"]

BASELINE_NAMES = ("popularity", "itemknn", "als", "lightfm", "text")
_METRICS = ("recall", "ndcg", "hit", "mrr", "coverage")


@dataclass(frozen=True)
class ReportConfig:
    """What ``coldbrew evaluate`` was asked for."""

    split: str = "temporal"
    quantile: float = 0.8
    cold_share: float = 0.2
    reveal: tuple[int, ...] = (0, 1, 3, 5)
    baselines: tuple[str, ...] = ("popularity", "itemknn", "als", "text")
    k: int = 20
    max_users: int | None = None
    seed: int = 0
    fit: FitConfig = field(default_factory=FitConfig)

    def __post_init__(self) -> None:
        unknown = [b for b in self.baselines if b not in BASELINE_NAMES]
        if unknown:
            raise ConfigError(f"unknown baseline(s) {', '.join(unknown)}; choose from {', '.join(BASELINE_NAMES)}")
        if self.split not in ("temporal", "cold-item"):
            raise ConfigError(f"--split must be 'temporal' or 'cold-item', got {self.split!r}")
        if not 0.0 < self.cold_share < 1.0:
            raise ConfigError(f"--cold-share must be between 0 and 1, got {self.cold_share}")
        if not 0.0 < self.quantile < 1.0:
            raise ConfigError(f"--quantile must be between 0 and 1, got {self.quantile}")
        if not self.reveal or min(self.reveal) < 0:
            raise ConfigError("--reveal needs one or more numbers >= 0")
        if self.k < 1:
            raise ConfigError(f"--k must be at least 1, got {self.k}")


def _baseline(name: str, config: FitConfig):
    from coldbrew.evaluation import baselines

    if name == "popularity":
        return baselines.PopularityRecommender()
    if name == "itemknn":
        return baselines.ItemKNNRecommender()
    if name == "als":
        return baselines.ALSRecommender()
    if name == "lightfm":
        try:
            baselines.LightFMRecommender._import()
        except ImportError as exc:
            raise ConfigError(str(exc)) from None
        return baselines.LightFMRecommender()
    from coldbrew.text import make_encoder

    return baselines.TextSimilarityRecommender(make_encoder(config.encoder))


def cold_start_curve(results: dict[str, dict[str, dict[str, float]]], metric: str) -> dict[str, list[tuple[int, float]]]:
    """Per model, ``(n revealed events, metric)`` points from the ``new_users@n`` segments."""
    curve: dict[str, list[tuple[int, float]]] = {}
    for model, segments in results.items():
        points = sorted(
            (int(name.split("@", 1)[1]), values[metric])
            for name, values in segments.items() if name.startswith("new_users@")
        )
        curve[model] = points
    return curve


def render_markdown(report: dict[str, Any]) -> str:
    """The report as markdown: header, one table per metric (models x segments), fit times."""
    k = report["k"]
    segments = list(next(iter(report["results"].values())))
    lines = [
        "# coldbrew evaluation report", "",
        f"Command: `{report['command']}`", "",
        _split_line(report),
        "",
        "Segments: `warm_users` (history = all their train events), `new_items` (users with"
        " history ranking only the items first seen after the cutoff), `new_users@n` (users first"
        " seen after the cutoff, history = their first n events; the same users for every n),"
        " `cold_items` (cold-item split: users with history ranking only the held-out items).",
        "", "| segment | users |", "|---|---:|",
    ]
    lines += [f"| {s} | {n:,} |" for s, n in report["users"].items()]
    for metric in _METRICS:
        key = f"{metric}@{k}"
        lines += ["", f"## {key}", "", "| model | " + " | ".join(segments) + " |",
                  "|---|" + "---:|" * len(segments)]
        for model, values in report["results"].items():
            lines.append(f"| {model} | " + " | ".join(f"{values[s][key]:.4f}" for s in segments) + " |")
    lines += ["", "## Fit time (seconds)", "", "| model | fit | add_items |", "|---|---:|---:|"]
    lines += [f"| {m} | {t['fit_s']:.1f} | {t['add_items_s']:.2f} |" for m, t in report["timings"].items()]
    if report.get("split", "temporal") == "temporal":
        lines += ["", "![cold-start curve](cold_start_curve.png)"]
    return "\n".join(lines) + "\n"


def _split_line(report: dict[str, Any]) -> str:
    sizes = (f"{report['train_events']:,} train / {report['test_events']:,} test events;"
             f" {report['items_seen']:,} items in the fit catalog, {report['items_new']:,} added after fit.")
    if report.get("split") == "cold-item":
        return (f"Split: random cold-item ({report['cold_share']:.0%} of the items held out with all"
                f" their events, added after fit); " + sizes)
    return (f"Split: global temporal at the {report['quantile']:.0%} timestamp quantile (cutoff"
            f" {report['cutoff_utc']} UTC); " + sizes)


def _plot(curve: dict[str, list[tuple[int, float]]], warm: dict[str, float], path: Path, metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for model, points in curve.items():
        if points:
            xs, ys = zip(*points)
            line = ax.plot(xs, ys, marker="o", label=model, linewidth=2.5 if model == "coldbrew" else 1.3)[0]
            ax.axhline(warm[model], color=line.get_color(), linestyle=":", linewidth=0.9)
    ax.set_xlabel("events known about the new user (n)")
    ax.set_ylabel(metric)
    ax.set_title("Cold-start curve: new users (dotted: the same model on warm users)")
    ax.grid(alpha=0.3)
    if ax.get_lines():
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run_report(catalog: Catalog, events: Events, out: str | Path, config: ReportConfig, command: str = "") -> dict[str, Any]:
    """Fit coldbrew and the baselines on one split, evaluate, write report.{md,json} and the plot."""
    from coldbrew import __version__
    from coldbrew.evaluation.protocol import (
        cold_item_segment,
        evaluate,
        fit_catalog,
        temporal_segments,
    )
    from coldbrew.evaluation.splits import cold_item_split, temporal_split
    from coldbrew.pipeline import Recommender

    models = {"coldbrew": lambda: Recommender(config.fit)}
    models.update({name: (lambda n=name: _baseline(n, config.fit)) for name in config.baselines})
    instances = {name: make() for name, make in models.items()}  # fail fast on a missing extra
    segments = {}
    if config.split == "cold-item":
        split = cold_item_split(events, catalog.item_ids, share=config.cold_share, seed=config.seed)
        cold = set(split.cold_items)
        is_cold = np.array([i in cold for i in catalog.item_ids], dtype=bool)
        seen, new = catalog.subset(np.flatnonzero(~is_cold)), catalog.subset(np.flatnonzero(is_cold))
        segments["cold_items"] = cold_item_segment(split, new.item_ids, max_users=config.max_users, seed=config.seed)
        cutoff = None
    else:
        split = temporal_split(events, quantile=config.quantile)
        seen, new = fit_catalog(split, catalog)
        cutoff = int(split.cutoff)
    for n in config.reveal if config.split == "temporal" else ():
        parts = temporal_segments(split, catalog, reveal=n, max_users=config.max_users, seed=config.seed,
                                  min_new_user_items=max(config.reveal) + 1)
        segments[f"new_users@{n}"] = parts["new_users"]
        segments.setdefault("warm_users", parts["warm_users"])
        segments.setdefault("new_items", parts["new_items"])
    segments = {name: seg for name, seg in segments.items() if len(seg.requests)}
    results: dict[str, dict[str, dict[str, float]]] = {}
    timings: dict[str, dict[str, float]] = {}
    for name, model in instances.items():
        print(f"evaluate: fitting {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        model.fit(seen, split.train)
        t1 = time.perf_counter()
        model.add_items(new)
        t2 = time.perf_counter()
        results[name] = evaluate(model, segments, k=config.k)
        timings[name] = {"fit_s": t1 - t0, "add_items_s": t2 - t1}
    metric = f"ndcg@{config.k}"
    report = {
        "command": command, "coldbrew_version": __version__, "k": config.k,
        "split": config.split, "quantile": config.quantile, "cold_share": config.cold_share,
        "cutoff": cutoff,
        "cutoff_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime(cutoff)) if cutoff is not None else None,
        "train_events": len(split.train), "test_events": len(split.test),
        "items_seen": len(seen), "items_new": len(new),
        "users": {name: len(seg.requests) for name, seg in segments.items()},
        "results": results, "timings": timings,
        "cold_start_curve": {m: [list(p) for p in pts] for m, pts in cold_start_curve(results, metric).items()},
    }
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    (directory / "report.md").write_text(render_markdown(report), encoding="utf-8")
    if config.split == "temporal":
        warm = {m: results[m].get("warm_users", {}).get(metric, float("nan")) for m in results}
        _plot(cold_start_curve(results, metric), warm, directory / "cold_start_curve.png", metric)
    return report


def parse_reveal(values: Sequence[str]) -> tuple[int, ...]:
    """``--reveal 0 1 3 5`` as a sorted tuple of distinct ints."""
    try:
        return tuple(sorted({int(v) for v in values}))
    except ValueError:
        raise ConfigError(f"--reveal expects integers, got {' '.join(values)}") from None
