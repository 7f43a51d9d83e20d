"""The notebooks: every .py/.ipynb pair in sync, one parameters cell, and an end-to-end papermill run at the
smoke preset."""
import ast
import json
import time

import jupytext
import pytest

from conftest import REAL_DIR, ROOT, rand_img, write_png
from ttl import realrain as RR
from ttl.study import list_notebooks, notebook_cells, run_notebook

NOTEBOOKS = list_notebooks(ROOT / "notebooks")
REQUIRED = {"preset", "seed", "device", "results_dir", "figures_dir", "clean_dir", "synthetic_dir", "real_dir"}


def test_the_study_has_its_five_notebooks_in_order():
    assert [p.stem for p in NOTEBOOKS] == ["01_statistical_gap_analysis", "02_teacher_pretraining", "03_distillation",
                                           "04_finetuning", "05_real_world_evaluation"]


@pytest.mark.parametrize("py", NOTEBOOKS, ids=lambda p: p.stem)
def test_pair_is_in_sync(py):
    ipynb = py.with_suffix(".ipynb")
    assert ipynb.is_file(), f"{ipynb.name} is missing: run `make study` (or jupytext --sync {py})"
    a, b = notebook_cells(jupytext.read(py)), notebook_cells(jupytext.read(ipynb))
    assert a == b, f"{py.name} and {ipynb.name} have drifted apart: run `make study` or `jupytext --sync`"


@pytest.mark.parametrize("py", NOTEBOOKS, ids=lambda p: p.stem)
def test_exactly_one_parameters_cell_with_the_standard_names(py):
    nb = jupytext.read(py)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1
    names = {t.id for node in ast.parse(cells[0].source).body if isinstance(node, ast.Assign) for t in node.targets}
    assert REQUIRED <= names
    ns = {}
    exec(cells[0].source, ns)
    assert ns["preset"] == "default" and ns["device"] == "auto" and ns["real_dir"] is None


@pytest.mark.parametrize("py", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_is_the_executed_default_run(py):
    nb = json.loads(py.with_suffix(".ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code), "committed notebook is not fully executed"
    assert nb["metadata"].get("papermill", {}).get("parameters", {}).get("preset") == "default"


@pytest.mark.slow
def test_notebook_01_runs_at_smoke(tmp_path):
    params = {"preset": "smoke", "results_dir": str(tmp_path / "results"), "figures_dir": str(tmp_path / "figures")}
    if REAL_DIR.is_dir():
        params["real_dir"] = str(REAL_DIR)
    t = time.time()
    run_notebook(ROOT / "notebooks" / "01_statistical_gap_analysis.py", tmp_path / "01.ipynb", params, cwd=ROOT)
    assert time.time() - t < 60
    m = json.loads((tmp_path / "results" / "01_statistical_gap_analysis" / "smoke" / "metrics.json").read_text())
    for key in ("config", "seed", "git_revision", "data_manifest", "c2st_auc", "c2_experiment", "verdicts"):
        assert key in m
    if REAL_DIR.is_dir():
        assert set(m["c2st_auc"]) == {"synthetic", "realistic"}
        assert all(set(v) == {"synthetic", "realistic"} for v in m["distance_to_real"].values())
        assert "held_out" in m["data_manifest"]["real"]
    figs = {p.name for p in (tmp_path / "figures" / "01_statistical_gap_analysis" / "smoke").glob("*.png")}
    assert {"examples.png", "distributions.png", "spectra.png", "distances.png", "c2_examples.png"} <= figs
    out = jupytext.read(tmp_path / "01.ipynb")
    assert notebook_cells(out) == notebook_cells(jupytext.read(ROOT / "notebooks" / "01_statistical_gap_analysis.py"))


@pytest.mark.slow
def test_unknown_preset_fails_at_once_with_the_valid_names(tmp_path):
    import papermill as pm

    with pytest.raises(pm.PapermillExecutionError, match="valid presets: smoke, default, paper"):
        run_notebook(ROOT / "notebooks" / "01_statistical_gap_analysis.py", tmp_path / "x.ipynb",
                     {"preset": "fast", "results_dir": str(tmp_path), "figures_dir": str(tmp_path)}, cwd=ROOT)


@pytest.mark.slow
def test_notebook_02_trains_teachers_on_photographs_at_smoke(tmp_path):
    from conftest import SCENES_DIR

    params = {"preset": "smoke", "results_dir": str(tmp_path / "results"), "figures_dir": str(tmp_path / "figures")}
    if REAL_DIR.is_dir() and SCENES_DIR.is_dir():
        params.update(real_dir=str(REAL_DIR), clean_dir=str(SCENES_DIR))
    t = time.time()
    run_notebook(ROOT / "notebooks" / "02_teacher_pretraining.py", tmp_path / "02.ipynb", params, cwd=ROOT)
    assert time.time() - t < 60
    res = tmp_path / "results" / "02_teacher_pretraining" / "smoke"
    m = json.loads((res / "metrics.json").read_text())
    assert {"accuracy", "roc_auc"} <= set(m["t1"]) and "psnr_y" in m["t2"] and set(m["sizes"]) == {"t1", "t2"}
    assert (res / "checkpoints" / "t1.pt").is_file() and (res / "checkpoints" / "t2.pt").is_file()
    assert (res / "runs" / "t2" / "last.pt").is_file()
    if "real_dir" in params:  # T1 and T2 on the train splits of real rainy and rendered photographs
        man = m["data_manifest"]
        assert {"real_dir", "clean_dir_rendered"} <= set(man["t1_positives"]) and man["t2_images"]["real_dir"]
        assert man["t1_negatives"]["source"].startswith("clean_dir")
        assert m["t1_same_scenes"]["n"] == 70 and m["t1_real_vs_clean"]["n"] == 9 + 35  # held-out photographs
        from ttl.io import list_images
        from ttl.scenes import split_files

        train = {f["file"] for f in man["t2_images"]["real_dir"]}
        assert train == {p.name for p in split_files(list_images(REAL_DIR))["train"]}  # never a held-out photograph


@pytest.mark.slow
def test_notebooks_02_to_05_in_order_at_smoke(tmp_path):
    from ttl.config import data_parameters, find_data_dir

    data = data_parameters(find_data_dir())  # the shared photographs when they are here, else the fallback
    params = {"preset": "smoke", "results_dir": str(tmp_path / "results"), "figures_dir": str(tmp_path / "figures"),
              **data}
    res = tmp_path / "results"
    paired = tmp_path / "spa"  # a real paired test set in the Rain13K layout
    for k in range(2):
        write_png(paired / "input" / f"{k}.png", rand_img(40, 56, seed=k))
        write_png(paired / "target" / f"{k}.png", rand_img(40, 56, seed=10 + k))
    seconds = {}
    for nb in ("02_teacher_pretraining", "03_distillation", "04_finetuning", "05_real_world_evaluation"):
        t = time.time()
        extra = {"real_paired_dir": str(paired)} if nb.startswith("05") else {}
        run_notebook(ROOT / "notebooks" / f"{nb}.py", tmp_path / f"{nb}.ipynb", {**params, **extra}, cwd=ROOT)
        seconds[nb] = time.time() - t
    assert max(seconds.values()) < 90, seconds
    m = json.loads((res / "03_distillation" / "smoke" / "metrics.json").read_text())
    p = m["params"]
    assert set(p) == {"t1", "t2", "student"} and min(p.values()) > 0
    assert p["student"] <= (p["t1"] + p["t2"]) / 3
    assert (res / "03_distillation" / "smoke" / "checkpoints" / "student.pt").is_file()
    # notebook 04: every row, the metrics layout the evaluation relies on, one loadable file per model and seed
    m4 = json.loads((res / "04_finetuning" / "smoke" / "metrics.json").read_text())
    from ttl.finetune import recipes

    expected = {r.name: r for r in recipes(m4["config"])}
    assert set(expected) == set(m4["models"])
    grid = m4["config"]["f_lr_grid"]
    for name, v in m4["models"].items():
        assert {"synthetic", "realistic", "realistic_clean"} <= set(v)
        assert all(isinstance(v[d][k], float) for d in ("synthetic", "realistic") for k in ("psnr_y", "ssim_y"))
        assert len(v["checkpoints"]) == len(v["chosen_steps"]) == expected[name].seeds
        assert v["role"] == expected[name].role
        if expected[name].tune:  # every searched row: the grid, every trial's curve, the chosen lr and step
            s = m4["search"][name]
            n = min(m4["config"]["f_search_draws"], expected[name].seeds)  # every lr on the same first draws
            assert s["draws"] == n and [(t["lr"], t["draw"]) for t in s["trials"]] == [(g, k) for g in grid for k in range(n)]
            assert s["lr"] in grid and v["lr"] == s["lr"] and set(s["mean_best"]) == {f"{g:g}" for g in grid}
            assert s["mean_best"][f"{s['lr']:g}"] == max(s["mean_best"].values())  # the best mean over the draws wins
            assert all(len(t["curve"]) >= 1 for t in s["trials"]) and s["step"] == v["chosen_steps"][0]
            assert all({"val_synthetic_psnr_y", "val_realistic_psnr_y"} <= set(c) for t in s["trials"] for c in t["curve"])
        else:
            assert v["lr"] == m4["models"][expected[name].parent]["lr"]
            assert m4["search"][name]["grid"] == grid  # the grid it inherited with its parent's choice
    assert len(m4["models"]["ttl"]["checkpoints"]) == m4["config"]["f_draws"]
    dose = m4["dose"]
    assert [p["budget"] for p in dose["points"]] == sorted(m4["config"]["f_dose"] + [1.0])
    # every budget runs the same draws, none of the lr search's (its winning trials were chosen at x1)
    first = m4["config"]["f_search_draws"]
    assert all(p["seeds"] == list(range(first, first + m4["config"]["f_dose_draws"])) for p in dose["points"])
    assert {r["set"] for r in dose["table"]} == {"synthetic", "realistic"}
    assert {"activation_rms", "probe_r2"} <= set(m4["transfer_diagnosis"])
    assert "student-target-ms" in m4["transfer_diagnosis"]["activation_rms"]
    assert {"lr_search.png", "dose_response.png"} <= {p.name for p in (tmp_path / "figures" / "04_finetuning" / "smoke").glob("*.png")}
    assert any(r["who"] == "random student" for r in m["kept"])
    ckpts = res / "04_finetuning" / "smoke" / "checkpoints"
    assert (ckpts / "ttl.pt").is_file() and (ckpts / "ttl.seed1.pt").is_file() and (ckpts / "syn2real.pt").is_file()
    from ttl.models import load_model

    model, meta = load_model(ckpts / "sup-full-large.pt")
    assert meta["recipe"] == "sup-full-large" and model.spec["width"] > load_model(ckpts / "ttl.pt")[0].spec["width"]
    # notebook 05: every model on every test set, and a verdict for every claim
    m5 = json.loads((res / "05_real_world_evaluation" / "smoke" / "metrics.json").read_text())
    assert set(m4["models"]) | {"input"} == set(m5["models"])
    assert m5["roles"] == {n: v["role"] for n, v in m4["models"].items()}
    sets = {"synthetic", "realistic", "realistic_clean", "real-paired"}
    if "clean_dir" in data:
        sets |= {"bundled_synthetic", "bundled_realistic", "bundled_realistic_clean"}
    assert set(m5["models"]["ttl"]) == sets
    assert all({"psnr_y", "ssim_y", "psnr_y_ci_images"} <= set(m5["models"]["ttl"][d]) for d in ("synthetic", "realistic"))
    assert [v["claim"] for v in m5["verdicts"]] == ["C1", "C2", "C3a", "C3b", "C3c", "C4"]
    assert all(v["verdict"] in ("supported", "not supported", "mixed", "not assessed") for v in m5["verdicts"])
    figs = {p.name for p in (tmp_path / "figures" / "05_real_world_evaluation" / "smoke").glob("*.png")}
    assert "gallery_realistic.png" in figs
    weights = tmp_path / "weights" / "smoke"
    assert {p.name for p in weights.glob("*.pt")} == {"ttl.pt", "sup-minority.pt", "sup-full.pt", "syn2real.pt"}
    assert json.loads((weights / "ttl.json").read_text())["test_metrics"]["photographs"]["synthetic"]["psnr_y"] > 0
    if "public_dir" in data:
        public = m5["public"]
        assert set(public) == {"ddn_sample", "heavyrain_sample", "rain13k_sample", "rain200_sample_test"}  # no _train
        assert all({"input", "ttl", "sup-full", "sup-minority", "syn2real"} <= set(v) for v in public.values())
        assert all(v["input"]["n"] == m5["config"]["e_public_n"] for v in public.values())
        assert "gain_over_input" in public["rain200_sample_test"]["ttl"]
        assert {"public_pairs.png", "gallery_real.png", "real_before_after.png"} <= figs
    if "real_dir" in data:
        assert m5["noref"]["ttl"]["niqe"]["mean"] > 0 and "ttl_minus" in m5["noref"]["sup-full"]["p_rain"]
        assert m5["rain_measures"]["classifier"]["cv_auc"] > 0.5
        # the judge: fitted on train splits, validated on known pairs and nuisances, checked by ranking
        assert 0 <= m5["judge"]["test_auc"] <= 1 and 0 < m5["judge"]["scene_floor"] <= 1
        cases = {(r["set"], r["case"]) for r in m5["judge_validation"]}
        assert ("real photographs (no target)", "horizontal blur (sigma 2 px)") in cases
        # the floor is set on noise-kept targets, and validity checks them on the test renders
        assert (RR.TARGET_SET, "target") in cases and m5["judge"]["scene_floor_quantile"] == RR.SCENE_FLOOR_QUANTILE
        assert m5["judge_check"]["target_share"] is not None
        assert "ttl_minus" in m5["noref"]["sup-full"]["credited_rain_left"] and "scene_kept" in m5["noref"]["ttl"]
        assert {"credited rain left", "scene kept"} <= set(m5["ranking_check"])
        assert "input" in m5["ranking_check"]["credited rain left"]["models"]
        from ttl.io import list_images
        from ttl.scenes import split_files

        train = {p.name for p in split_files(list_images(data["real_dir"]))["train"]}
        assert m5["real_photographs"] and not set(m5["real_photographs"]) & train

    # the same seed gives the same numbers: notebook 04's headline rows again, in another folder
    again = tmp_path / "again"
    run_notebook(ROOT / "notebooks" / "04_finetuning.py", tmp_path / "04-again.ipynb",
                 {**params, "results_dir": str(again), "figures_dir": str(tmp_path / "fig-again"),
                  "teachers_dir": str(res / "02_teacher_pretraining" / "smoke" / "checkpoints"),
                  "student_path": str(res / "03_distillation" / "smoke" / "checkpoints" / "student.pt"),
                  "only": ["ttl", "sup-minority"],
                  "f_optional_rows": []}, cwd=ROOT)  # a size the parameters cell does not list reaches the config
    m4b = json.loads((again / "04_finetuning" / "smoke" / "metrics.json").read_text())
    assert set(m4b["models"]) == {"ttl", "sup-minority"}
    assert m4b["config"]["f_optional_rows"] == [] and m4["config"]["f_optional_rows"] == ["ttl-target-ms"]
    for name in ("ttl", "sup-minority"):
        for dom in ("synthetic", "realistic", "realistic_clean"):
            a, b = m4["models"][name][dom], m4b["models"][name][dom]
            assert a["psnr_y_per_seed"] == b["psnr_y_per_seed"] and a["ssim_y_per_seed"] == b["ssim_y_per_seed"]


@pytest.mark.slow
def test_the_paper_path_trains_on_a_public_set_and_tests_on_another(tmp_path):
    """The `paper` preset's data path at smoke scale: supervised rows train on a public paired training set
    (rain200_sample_train, any detected layout) and are tested on a public test set (rain200_sample_test)."""
    from conftest import PUBLIC_DIR

    if not PUBLIC_DIR.is_dir():
        pytest.skip(f"no public samples at {PUBLIC_DIR}")
    public = tmp_path / "public"
    public.mkdir()
    (public / "rain200_sample_test").symlink_to(PUBLIC_DIR / "rain200_sample_test")
    params = {"preset": "smoke", "results_dir": str(tmp_path / "results"), "figures_dir": str(tmp_path / "figures")}
    for nb in ("02_teacher_pretraining", "03_distillation"):
        run_notebook(ROOT / "notebooks" / f"{nb}.py", tmp_path / f"{nb}.ipynb", params, cwd=ROOT)
    run_notebook(ROOT / "notebooks" / "04_finetuning.py", tmp_path / "04.ipynb",
                 {**params, "synthetic_dir": str(PUBLIC_DIR / "rain200_sample_train"),
                  "only": ["ttl", "sup-minority", "sup-full", "syn2real"]}, cwd=ROOT)
    run_notebook(ROOT / "notebooks" / "05_real_world_evaluation.py", tmp_path / "05.ipynb",
                 {**params, "public_dir": str(public)}, cwd=ROOT)
    res = tmp_path / "results"
    m4 = json.loads((res / "04_finetuning" / "smoke" / "metrics.json").read_text())
    pairs = m4["data_manifest"]["pairs"]
    assert pairs["source"] == "synthetic_dir" and pairs["layout"] == "rain200" and pairs["pairs"] >= 10
    m5 = json.loads((res / "05_real_world_evaluation" / "smoke" / "metrics.json").read_text())
    assert set(m5["public"]) == {"rain200_sample_test"}
    assert set(m5["public"]["rain200_sample_test"]) == {"input", "ttl", "sup-minority", "sup-full", "syn2real"}


def test_notebook_03_without_teachers_says_what_to_run(tmp_path):
    import papermill as pm

    with pytest.raises(pm.PapermillExecutionError, match="run notebook 02 first"):
        run_notebook(ROOT / "notebooks" / "03_distillation.py", tmp_path / "x.ipynb",
                     {"preset": "smoke", "results_dir": str(tmp_path / "r"), "figures_dir": str(tmp_path / "f")},
                     cwd=ROOT)


def test_notebooks_04_and_05_without_their_inputs_say_what_to_run(tmp_path):
    import papermill as pm

    params = {"preset": "smoke", "results_dir": str(tmp_path / "r"), "figures_dir": str(tmp_path / "f")}
    with pytest.raises(pm.PapermillExecutionError, match="run notebook 02 first"):
        run_notebook(ROOT / "notebooks" / "04_finetuning.py", tmp_path / "x.ipynb", params, cwd=ROOT)
    with pytest.raises(pm.PapermillExecutionError, match="run notebook 04 first"):
        run_notebook(ROOT / "notebooks" / "05_real_world_evaluation.py", tmp_path / "y.ipynb", params, cwd=ROOT)


@pytest.mark.parametrize("py", NOTEBOOKS, ids=lambda p: p.stem)
def test_only_parameters_can_pass_as_preset_sizes(py):
    # ttl.config.notebook_settings reads preset sizes from the notebook's namespace: nothing the notebook itself binds
    # before that line (imports, variables) may carry a preset key's name, or it would be taken for an override
    from ttl.config import PRESETS

    src = py.read_text()
    head = src[:src.index("C.notebook_settings(globals(), preset)")]
    params = head.index('tags=["parameters"]')
    after = head[head.index("# %%", params + 1):]
    bound = set()
    for node in ast.walk(ast.parse("\n".join(line for line in after.splitlines() if not line.startswith("cfg =")))):
        if isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
    assert not bound & set().union(*PRESETS.values())
