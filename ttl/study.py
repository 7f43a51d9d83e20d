"""Run the study's notebooks with papermill, keeping each jupytext pair in sync.

The reviewed source of a notebook is ``notebooks/NN_name.py`` (jupytext percent format). :func:`run_notebook`
converts it, executes it with papermill (parameters injected), removes papermill's injected-parameters cell
(the parameters are kept in the notebook's metadata and printed by the notebook itself), and writes the
executed ``.ipynb``. So the executed notebook and its ``.py`` stay one pair.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"

__all__ = ["list_notebooks", "run_notebook", "run_study", "notebook_cells", "notebook_parameters", "NOTEBOOK_DIR"]


def list_notebooks(folder: str | os.PathLike = NOTEBOOK_DIR) -> list[Path]:
    """The study's notebooks (``NN_name.py``), in order."""
    return sorted(p for p in Path(folder).glob("[0-9][0-9]_*.py"))


def notebook_parameters(py_path: str | os.PathLike) -> list[str]:
    """The names assigned in a notebook's cell tagged ``parameters`` (read from its ``.py`` source)."""
    import ast

    lines, cell, inside = Path(py_path).read_text(encoding="utf-8").splitlines(), [], False
    for line in lines:
        if line.startswith("# %%"):
            if inside:
                break
            inside = 'tags=["parameters"]' in line
        elif inside:
            cell.append(line)
    return [t.id for node in ast.parse("\n".join(cell)).body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)]


def notebook_cells(nb) -> list[tuple[str, str, tuple[str, ...]]]:
    """``(cell type, source, tags)`` of every cell but papermill's injected one: what a pair must share."""
    out = []
    for c in nb.cells:
        tags = tuple(c.get("metadata", {}).get("tags", []))
        if "injected-parameters" in tags:
            continue
        out.append((c.cell_type, c.source.strip(), tuple(t for t in tags if t != "papermill-error-cell-tag")))
    return out


def run_notebook(py_path: str | os.PathLike, output: str | os.PathLike, parameters: Mapping[str, Any],
                 cwd: str | os.PathLike | None = None, timeout: int | None = None, progress: bool = False) -> Path:
    """Execute ``py_path`` with ``parameters`` and write the executed notebook to ``output`` (.ipynb)."""
    import jupytext
    import papermill as pm

    py_path, output = Path(py_path), Path(output)
    nb = jupytext.read(py_path)
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.ipynb", Path(tmp) / "out.ipynb"
        jupytext.write(nb, src)
        pm.execute_notebook(str(src), str(dst), parameters=dict(parameters), cwd=str(cwd or py_path.parent.parent),
                            kernel_name="python3", progress_bar=progress, execution_timeout=timeout,
                            stdout_file=None, log_output=False)
        done = jupytext.read(dst)
    done.cells = [c for c in done.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    done.metadata["jupytext"] = {"formats": "ipynb,py:percent"}
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = output.with_name(output.stem + ".part.ipynb")
    jupytext.write(done, tmp_out, fmt="ipynb")
    os.replace(tmp_out, output)
    return output


def run_study(preset: str = "default", notebooks: list[str] | None = None, output_dir: str | os.PathLike | None = None,
              extra: Mapping[str, Any] | None = None, cwd: str | os.PathLike | None = None) -> dict[str, float]:
    """Run every notebook (or those whose name starts with one of ``notebooks``) in order at ``preset``.

    ``extra`` parameters must be a notebook parameter or a size of the preset (else ``SystemExit`` before anything
    runs). Executed notebooks go to ``output_dir`` (default: beside their ``.py``, i.e. the committed ones).
    Returns the wall time of each notebook in seconds."""
    from .config import PRESETS

    if preset not in PRESETS:
        raise SystemExit(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    times = {}
    todo = [p for p in list_notebooks() if not notebooks or any(p.stem.startswith(n) for n in notebooks)]
    if not todo:
        raise SystemExit(f"no notebook matches {notebooks}; available: {[p.stem for p in list_notebooks()]}")
    known = set(PRESETS[preset]).union(*(notebook_parameters(p) for p in todo))
    unknown = sorted(set(extra or {}) - known)
    if unknown:  # papermill would only log them and run without: refuse before any notebook starts
        raise SystemExit(f"unknown parameter(s) {unknown} for {[p.stem for p in todo]}: valid are the notebooks' "
                         f"parameters and the preset's sizes: {', '.join(sorted(known))}")
    for py in todo:
        out = Path(output_dir) / f"{py.stem}.ipynb" if output_dir else py.with_suffix(".ipynb")
        params = {"preset": preset, **(extra or {})}
        print(f"[ttl study] {py.stem} (preset={preset}) ...", flush=True)
        t = time.time()
        run_notebook(py, out, params, cwd=cwd, progress=sys.stderr.isatty())
        times[py.stem] = round(time.time() - t, 1)
        print(f"[ttl study] {py.stem} done in {times[py.stem]:.0f} s -> {out}", flush=True)
    print(f"[ttl study] total {sum(times.values()):.0f} s", flush=True)
    return times
