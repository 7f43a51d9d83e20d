"""The README's results block is generated from the committed run records, and is current."""
from conftest import ROOT
import json

import pytest

from ttl.report import END, SECTIONS, START, findings, results_markdown, update_readme


def test_readme_results_block_matches_the_committed_results():
    text = (ROOT / "README.md").read_text()
    block = text.split(START, 1)[1].split(END, 1)[0]
    assert block.strip() == results_markdown(ROOT / "results").strip(), "README is stale: run `python -m ttl report`"


def test_update_readme_replaces_only_the_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nold numbers\n{END}\noutro\n")
    assert update_readme(readme, tmp_path / "results")
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old numbers" not in text
    assert not update_readme(readme, tmp_path / "results")  # idempotent


def test_each_notebook_findings_are_its_readme_part():
    """The "What we found" cell of each notebook is built from its record and is the README's text for it."""
    readme = results_markdown(ROOT / "results")
    for nb in SECTIONS:
        p = ROOT / "results" / nb / "default" / "metrics.json"
        if not p.is_file():
            continue
        text = findings(json.loads(p.read_text()))
        assert text.strip() and text.strip() in readme, nb
    with pytest.raises(ValueError, match="no findings section"):
        findings({"notebook": "99_unknown"})


def test_public_pairs_tables_have_a_cell_under_every_header():
    """A row scored on the test photographs but not on the public sets (an ablation) gets no public column, so the
    markdown rows stay aligned with their header."""
    m = json.loads((ROOT / "results" / "05_real_world_evaluation" / "default" / "metrics.json").read_text())
    text = "\n".join(SECTIONS["05_real_world_evaluation"](m))
    for title in ("**Public pairs**", "Gain over the rainy input on the public test pairs"):
        table = text.split(title, 1)[1].split("\n\n", 2)[1].splitlines()
        widths = {line.count("|") for line in table}
        assert len(widths) == 1, (title, table[:3])
