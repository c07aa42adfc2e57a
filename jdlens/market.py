"""`jdlens market OUT_DIR`: a batch output as a report a person would rather look at than read.

Writes `OUT_DIR/market/` with four PNG plots (role-type mix, mistake rates, score distribution, role type
by job title) and `summary.md`, which embeds them with the numbers behind each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jdlens.batch import JDS, MISTAKE_TYPES

ROLE_ORDER = ("application", "ml", "research", "mixed")
COLORS = {"application": "#4C72B0", "ml": "#55A868", "research": "#C44E52", "mixed": "#8172B2"}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def load_jds(out_dir: Path) -> Any:
    import pyarrow.parquet as pq

    folder = out_dir / JDS
    if not folder.is_dir() or not any(folder.glob("*.parquet")):
        raise FileNotFoundError(f"{folder}: no Parquet parts (run `jdlens batch IN {out_dir}` first)")
    return pq.read_table(folder).to_pandas()


def _model_names(jds: Any) -> list[str]:
    """`jdlens v3` for registry models; a folder model has no version."""
    pairs = zip(jds["model_name"], jds["model_version"], strict=True)
    return sorted({str(a) if b is None or b != b else f"{a} v{b}" for a, b in pairs})


def _table(rows: list[list[Any]], head: list[str]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


def market_report(out_dir: Path, title_column: str = "title", top_titles: int = 12) -> Path:
    """Draw the plots and write the summary; returns the summary's path."""
    jds = load_jds(out_dir)
    if jds.empty:
        raise ValueError(f"{out_dir / JDS} has no rows")
    plt = _plt()
    dest = out_dir / "market"
    dest.mkdir(parents=True, exist_ok=True)
    n = len(jds)
    roles = [r for r in ROLE_ORDER if r in set(jds["role_type"])] + sorted(set(jds["role_type"]) - set(ROLE_ORDER))
    mix = jds["role_type"].value_counts().reindex(roles, fill_value=0)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(mix.index, mix.values, color=[COLORS.get(r, "grey") for r in mix.index])
    for i, v in enumerate(mix.values):
        ax.text(i, v, f"{v / n:.0%}", ha="center", va="bottom")
    ax.set_title(f"Role-type mix ({n:,} JDs)")
    ax.set_ylabel("JDs")
    fig.tight_layout()
    fig.savefig(dest / "role_mix.png", dpi=110)
    plt.close(fig)

    rates = {m: float(jds[f"mistake_{m}"].mean()) for m in MISTAKE_TYPES}
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.barh(list(rates), list(rates.values()), color="#DD8452")
    ax.set_xlim(0, 1)
    for i, v in enumerate(rates.values()):
        ax.text(v, i, f" {v:.0%}", va="center")
    ax.set_title("Share of JDs with each mistake")
    fig.tight_layout()
    fig.savefig(dest / "mistake_rates.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(jds["score"], bins=range(0, 105, 5), color="#4C72B0", edgecolor="white")
    ax.axvline(jds["score"].median(), color="black", linestyle="--", label=f"median {jds['score'].median():.0f}")
    ax.set_xlabel("score (0-100)")
    ax.set_ylabel("JDs")
    ax.set_title("Score distribution")
    ax.legend()
    fig.tight_layout()
    fig.savefig(dest / "score_distribution.png", dpi=110)
    plt.close(fig)

    lines = [
        f"# The market in {n:,} JDs",
        "",
        f"Scored by {', '.join(_model_names(jds))}.",
        "",
        "## Role-type mix",
        "",
        "![role-type mix](role_mix.png)",
        "",
        _table([[r, int(c), f"{c / n:.1%}"] for r, c in mix.items()], ["role type", "JDs", "share"]),
        "",
        "## Mistakes",
        "",
        "![mistake rates](mistake_rates.png)",
        "",
        _table([[m, f"{v:.1%}"] for m, v in rates.items()], ["mistake", "share of JDs"]),
        "",
        "## Scores",
        "",
        "![score distribution](score_distribution.png)",
        "",
        f"Mean {jds['score'].mean():.1f}, median {jds['score'].median():.0f}, "
        f"{(jds['score'] == 100).mean():.1%} of JDs have no mistake.",
        "",
        _table(
            [[r, f"{g['score'].mean():.1f}", int(len(g))] for r, g in jds.groupby("role_type")],
            ["role type", "mean score", "JDs"],
        ),
        "",
        "## Role type by job title",
        "",
    ]
    if title_column in jds.columns and jds[title_column].notna().any():
        titles = jds[title_column].fillna("(none)").astype(str).str.strip()
        top = titles.value_counts().head(top_titles).index
        cross = (
            jds.assign(_title=titles)[titles.isin(top)]
            .groupby("_title")["role_type"]
            .value_counts(normalize=True)
            .unstack(fill_value=0.0)
            .reindex(columns=roles, fill_value=0.0)
            .loc[list(reversed(top))]
        )
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(cross) + 1.5))
        left = [0.0] * len(cross)
        for r in cross.columns:
            ax.barh(cross.index, cross[r], left=left, color=COLORS.get(r, "grey"), label=r)
            left = [a + b for a, b in zip(left, cross[r], strict=True)]
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of JDs with this title")
        ax.set_title(f"Role type by job title (top {len(cross)} titles)")
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        fig.savefig(dest / "role_by_title.png", dpi=110)
        plt.close(fig)
        counts = titles.value_counts()
        lines += [
            "![role type by title](role_by_title.png)",
            "",
            _table(
                [
                    [t, int(counts[t]), *(f"{cross.loc[t, r]:.0%}" for r in cross.columns)]
                    for t in reversed(cross.index)
                ],
                ["title", "JDs", *cross.columns],
            ),
        ]
    else:
        lines.append(f"(no `{title_column}` column in the input was carried through; pass --title-column)")
    summary = dest / "summary.md"
    summary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return summary
