"""notebooks/compare_versions.ipynb runs top to bottom against a store with two tiny trained versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import tiny_overrides

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "compare_versions.ipynb"
SUMMARY_PREFIX = "NOTEBOOK_SUMMARY "


def _train(encoder: Path) -> None:
    from typer.testing import CliRunner

    from jdlens.cli import app

    result = CliRunner().invoke(app, ["train", *tiny_overrides(encoder), "max_steps=10"])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"


def _stream_lines(nb) -> list[str]:
    return [
        line
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream" and out.get("name") == "stdout"
        for line in out["text"].splitlines()
    ]


def test_committed_notebook_has_no_outputs() -> None:
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    assert all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.integration
def test_compare_versions_notebook_runs(project: Path, tiny_encoder: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    from jdlens import tracking

    _train(tiny_encoder)
    _train(tiny_encoder)
    client = tracking.setup()
    run_ids = {str(mv.version): mv.run_id for mv in tracking.versions(client)}
    assert sorted(run_ids) == ["1", "2"]

    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(project)}}).execute()

    summaries = [line[len(SUMMARY_PREFIX) :] for line in _stream_lines(nb) if line.startswith(SUMMARY_PREFIX)]
    assert len(summaries) == 1, _stream_lines(nb)
    summary = json.loads(summaries[0])

    # The notebook read the test's store, not some other one.
    assert str(project / ".jdlens") in summary["tracking_uri"]
    # Versions table: both versions, champion on 1, challenger on 2, each with its own run.
    rows = {row["version"]: row for row in summary["versions"]}
    assert [row["version"] for row in summary["versions"]] == ["1", "2"]
    assert summary["champion"] == "1"
    assert tracking.CHAMPION in rows["1"]["aliases"]
    assert tracking.CHALLENGER in rows["2"]["aliases"]
    assert {v: row["run_id"] for v, row in rows.items()} == run_ids
    key = {v: tracking.run_metrics(client, run_ids[v])[tracking.KEY_METRIC] for v in run_ids}
    for v, row in rows.items():
        assert row[tracking.KEY_METRIC] == pytest.approx(key[v])
        assert row[f"delta_{tracking.KEY_METRIC}"] == pytest.approx(key[v] - key["1"], abs=1e-4)

    # Confusion matrices: one per version, over every test sentence.
    n_test = len([x for x in (project / "data/sentences/test.jsonl").read_text().splitlines() if x.strip()])
    assert summary["n_test"] == n_test
    assert summary["confusion_totals"] == {"1": n_test, "2": n_test}
    images = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if "image/png" in out.get("data", {})
    ]
    assert len(images) == 1  # one figure, a panel per version

    # Champion errors: a real count within the split, role errors among them.
    assert isinstance(summary["n_errors"], int)
    assert 0 <= summary["n_role_errors"] <= summary["n_errors"] <= n_test
    assert any(f"gets {summary['n_errors']} of {n_test} test sentences wrong" in line for line in _stream_lines(nb))
