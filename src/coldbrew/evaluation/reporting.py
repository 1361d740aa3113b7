"""The evaluation report: coldbrew and baselines on one split, as markdown, JSON and a plot.

``run_report`` is what ``coldbrew evaluate`` calls. Every model is fitted on the train events
with the items seen in them, told about the other items with ``add_items``, then evaluated
through the same metric code on the segments of
:func:`coldbrew.evaluation.protocol.temporal_segments`: warm users, new items, and new users
with ``n`` revealed events for each requested ``n`` (the same users for every ``n``, so the
curve of NDCG against ``n`` — the cold-start curve — compares like with like).

Splits: ``temporal`` (global time cut), ``cold-item`` (random items held out with all their
events), ``cold-user`` (random users held out; their first ``n`` events revealed) and
``leave-last-out`` (each user's last event). Plots: the cold-start curve over users
(``cold_start_curve.png``), recall by how many training events the recommended-to item had
(``item_warmth_curve.png``), and coldbrew's training curves (``training_curves.png``).
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

__all__ = [
    "BASELINE_NAMES",
    "SPLITS",
    "ReportConfig",
    "cold_start_curve",
    "parse_reveal",
    "plot_training_curves",
    "render_markdown",
    "run_report",
]

BASELINE_NAMES = ("popularity", "itemknn", "als", "lightfm", "text")
SPLITS = ("temporal", "cold-item", "cold-user", "leave-last-out")
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
        if self.split not in SPLITS:
            raise ConfigError(f"--split must be one of {', '.join(SPLITS)}; got {self.split!r}")
        if not 0.0 < self.cold_share < 1.0:
            raise ConfigError(f"--cold-share must be between 0 and 1, got {self.cold_share}")
        if self.max_users is not None and self.max_users < 1:
            raise ConfigError(f"--max-users must be at least 1, got {self.max_users}")
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
    if report.get("cold_start_curve") and any(report["cold_start_curve"].values()):
        lines += ["", "![cold-start curve](cold_start_curve.png)"]
    warmth = report.get("item_warmth") or {}
    if warmth:
        labels = [label for label, _, _ in next(iter(warmth.values()))]
        pairs = [n for _, _, n in next(iter(warmth.values()))]
        lines += ["", f"## recall@{k} of warm users' test items, by the item's training events", "",
                  "| model | " + " | ".join(f"{lab} ({n:,})" for lab, n in zip(labels, pairs)) + " |",
                  "|---|" + "---:|" * len(labels)]
        for model, rows in warmth.items():
            lines.append(f"| {model} | " + " | ".join("–" if np.isnan(r) else f"{r:.4f}" for _, r, _ in rows) + " |")
        lines += ["", "![item warmth curve](item_warmth_curve.png)"]
    if report.get("training_curves"):
        lines += ["", "## coldbrew training curves", "", "![training curves](training_curves.png)"]
    return "\n".join(lines) + "\n"


def _split_line(report: dict[str, Any]) -> str:
    sizes = (f"{report['train_events']:,} train / {report['test_events']:,} test events;"
             f" {report['items_seen']:,} items in the fit catalog, {report['items_new']:,} added after fit.")
    if report.get("split") == "cold-user":
        return (f"Split: random cold-user ({report['cold_share']:.0%} of the users held out with all"
                f" their events; their first n events revealed); " + sizes)
    if report.get("split") == "leave-last-out":
        return "Split: leave-last-out (each user's last event is the test); " + sizes
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


def _plot_item_warmth(warmth: dict[str, list[tuple[str, float, int]]], path: Path, k: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for model, rows in warmth.items():
        xs = [label for label, _, _ in rows]
        ys = [r for _, r, _ in rows]
        ax.plot(xs, ys, marker="o", label=model, linewidth=2.5 if model == "coldbrew" else 1.3)
    ax.set_xlabel("training events of the item (0 = added after fit)")
    ax.set_ylabel(f"recall@{k} of warm users' test items")
    ax.set_title("Item cold-start curve: how well items are found, by item warmth")
    ax.grid(alpha=0.3)
    if ax.get_lines():
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_training_curves(curves: dict[str, dict[str, list[float]]], path: str | Path) -> bool:
    """Plot per-epoch training curves ``{component: {"epoch": [...], metric: [...]}}``.

    One panel per component, every metric beside ``epoch`` as a line (losses on the left
    axis, other metrics on a twin right axis). Writes a PNG; returns False (and writes
    nothing) when there is no curve to draw.
    """
    curves = {c: v for c, v in curves.items() if v.get("epoch")}
    if not curves:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 4), dpi=110, squeeze=False)
    for ax, (component, values) in zip(axes[0], curves.items()):
        epochs = values["epoch"]
        right = None
        for name, ys in values.items():
            if name == "epoch" or len(ys) != len(epochs):
                continue
            if "loss" in name:
                ax.plot(epochs, ys, marker=".", label=name)
            else:
                right = right or ax.twinx()
                right.plot(epochs, ys, marker=".", linestyle="--", color="C3", label=name)
                right.set_ylabel("validation")
        ax.set_title(component)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        handles = ax.get_legend_handles_labels()
        if right is not None:
            extra = right.get_legend_handles_labels()
            handles = (handles[0] + extra[0], handles[1] + extra[1])
        if handles[0]:
            ax.legend(*handles, fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def _item_counts(events: Events) -> dict[str, int]:
    items, counts = np.unique(events.item_ids.astype(str), return_counts=True)
    return dict(zip(items.tolist(), counts.tolist()))


def run_report(catalog: Catalog, events: Events, out: str | Path, config: ReportConfig, command: str = "") -> dict[str, Any]:
    """Fit coldbrew and the baselines on one split, evaluate, write report.{md,json} and the plot."""
    from coldbrew import __version__
    from coldbrew.evaluation.metrics import item_warmth_recall
    from coldbrew.evaluation.protocol import (
        cold_item_catalogs,
        cold_item_segment,
        fit_catalog,
        recommend_segments,
        score_segments,
        temporal_segments,
    )
    from coldbrew.evaluation.splits import (
        cold_item_split,
        cold_user_split,
        leave_last_out,
        temporal_split,
    )
    from coldbrew.pipeline import Recommender

    models = {"coldbrew": lambda: Recommender(config.fit)}
    models.update({name: (lambda n=name: _baseline(n, config.fit)) for name in config.baselines})
    instances = {name: make() for name, make in models.items()}  # fail fast on a missing extra
    segments = {}
    if config.split == "cold-item":
        split = cold_item_split(events, catalog.item_ids, share=config.cold_share, seed=config.seed)
        seen, new = cold_item_catalogs(split, catalog)
        segments["cold_items"] = cold_item_segment(split, new.item_ids, max_users=config.max_users, seed=config.seed)
        cutoff = None
    elif config.split == "cold-user":
        split = cold_user_split(events, share=config.cold_share, seed=config.seed)
        seen, new = fit_catalog(split, catalog)
        cutoff = None
    elif config.split == "leave-last-out":
        split = leave_last_out(events)
        seen, new = fit_catalog(split, catalog)
        cutoff = None
    else:
        split = temporal_split(events, quantile=config.quantile)
        seen, new = fit_catalog(split, catalog)
        cutoff = int(split.cutoff)
    reveal = config.reveal if config.split in ("temporal", "cold-user") else (0,)
    for n in reveal if config.split != "cold-item" else ():
        parts = temporal_segments(split, catalog, reveal=n, max_users=config.max_users, seed=config.seed,
                                  min_new_user_items=max(config.reveal) + 1)
        if config.split != "leave-last-out":  # that split has no new users
            segments[f"new_users@{n}"] = parts["new_users"]
        segments.setdefault("warm_users", parts["warm_users"])
        segments.setdefault("new_items", parts["new_items"])
    segments = {name: seg for name, seg in segments.items() if len(seg.requests)}
    results: dict[str, dict[str, dict[str, float]]] = {}
    timings: dict[str, dict[str, float]] = {}
    warmth: dict[str, list[tuple[str, float, int]]] = {}
    counts = _item_counts(split.train)
    curves: dict[str, dict[str, list[float]]] = {}
    for name, model in instances.items():
        print(f"evaluate: fitting {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        model.fit(seen, split.train)
        t1 = time.perf_counter()
        model.add_items(new)
        t2 = time.perf_counter()
        lists = recommend_segments(model, segments, k=config.k)
        results[name] = score_segments(segments, lists, k=config.k)
        timings[name] = {"fit_s": t1 - t0, "add_items_s": t2 - t1}
        if "warm_users" in segments:
            warmth[name] = item_warmth_recall(lists["warm_users"], segments["warm_users"].relevant, counts, config.k)
        if name == "coldbrew":
            curves = dict(getattr(model, "training_curves_", {}) or {})
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
        "item_warmth": {m: [list(r) for r in rows] for m, rows in warmth.items()},
        "training_curves": curves,
    }
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    (directory / "report.md").write_text(render_markdown(report), encoding="utf-8")
    curve = cold_start_curve(results, metric)
    if any(curve.values()):
        warm = {m: results[m].get("warm_users", {}).get(metric, float("nan")) for m in results}
        _plot(curve, warm, directory / "cold_start_curve.png", metric)
    if warmth:
        _plot_item_warmth(warmth, directory / "item_warmth_curve.png", config.k)
    plot_training_curves(curves, directory / "training_curves.png")
    return report


def parse_reveal(values: Sequence[str]) -> tuple[int, ...]:
    """``--reveal 0 1 3 5`` as a sorted tuple of distinct ints."""
    try:
        return tuple(sorted({int(v) for v in values}))
    except ValueError:
        raise ConfigError(f"--reveal expects integers, got {' '.join(values)}") from None
