"""The README's results block is generated from the committed run records, and is current."""
from conftest import ROOT
from ttl.report import END, START, results_markdown, update_readme


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
