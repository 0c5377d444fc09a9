"""The experiments package: definitions against the thesis, the cost tables, and every experiment's
reduced setting on tiny data (Q-tips in memory; CIFAR, STL-10 and BDD100K in their on-disk formats)."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from experiments.__main__ import main as experiments_main
from experiments.definitions import EXPERIMENTS, NETWORKS
from experiments.report import write_report
from experiments.runner import network_config, run_experiment, run_name
from nlseg.errors import InputError
from nlseg.nn.config import build_model

QUIET = (lambda line: None)


@pytest.fixture(autouse=True)
def _one_thread_and_global_rng():
    """Training seeds torch's global generator and may change the thread count: restore both."""
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.set_rng_state(state)


def _cifar_pickle(path: Path, n: int, key: str, classes: int, rng: np.random.Generator) -> None:
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    with path.open("wb") as f:
        pickle.dump({"data": data, key: [int(v) for v in rng.integers(0, classes, n)]}, f)


@pytest.fixture(scope="module")
def benchmarks(tmp_path_factory) -> Path:
    """CIFAR-10, CIFAR-100 and STL-10 in their real formats, a few images each."""
    root = tmp_path_factory.mktemp("bench")
    rng = np.random.default_rng(0)
    c10 = root / "cifar-10-batches-py"
    c10.mkdir()
    for i in range(1, 6):
        _cifar_pickle(c10 / f"data_batch_{i}", 4, "labels", 10, rng)
    _cifar_pickle(c10 / "test_batch", 6, "labels", 10, rng)
    c100 = root / "cifar-100-python"
    c100.mkdir()
    _cifar_pickle(c100 / "train", 20, "fine_labels", 100, rng)
    _cifar_pickle(c100 / "test", 6, "fine_labels", 100, rng)
    stl = root / "stl10_binary"
    stl.mkdir()
    for split, n in (("train", 10), ("test", 4)):
        (stl / f"{split}_X.bin").write_bytes(rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8).tobytes())
        (stl / f"{split}_y.bin").write_bytes(bytes(int(v) for v in rng.integers(1, 11, n)))
    return root


def test_definitions_are_consistent_with_the_thesis_tables():
    for e in EXPERIMENTS.values():
        assert {"reduced", "full"} <= set(e.settings) and e.kind in ("curves", "table", "cost")
        assert all(r in NETWORKS for r in e.rows)
        keys = {c.key for c in e.columns}
        for row, cells in e.thesis.items():
            assert row in e.rows and set(cells) <= keys
            assert all(k == "params" or k in e.metrics for cell in cells.values() for k in cell)
        if e.kind != "cost":
            assert e.settings["full"].seeds == (0, 1, 2, 3, 4) and e.settings["full"].epochs is None
            assert e.settings["full"].shrink is None and e.settings["full"].train_limit is None
    assert EXPERIMENTS["table5.2"].thesis["diffusion"]["cifar10"]["accuracy"] == 93.27
    assert EXPERIMENTS["table5.7"].thesis["resnet44"]["stl10-frac0.4"]["accuracy"] == 67.23
    # Table 5.6 evaluates Table 5.2's models, and Table 5.3's s = 1/2 rows are Table 5.2's runs
    full = EXPERIMENTS["table5.2"].settings["full"]
    assert run_name(network_config(NETWORKS["frac"], "cifar10", full)) == run_name(
        network_config(NETWORKS["frac"], "cifar10", EXPERIMENTS["table5.3"].settings["full"]))


@pytest.mark.parametrize("dataset,row,params", [("qtips", "hamiltonian", 0.50), ("qtips", "diffusion", 0.55),
                                                ("qtips", "resnet44", 0.66), ("cifar10", "diffusion", 0.56)])
def test_full_setting_builds_the_thesis_networks(dataset, row, params):
    config = network_config(NETWORKS[row], dataset, EXPERIMENTS["table5.2"].settings["full"])
    assert sum(p.numel() for p in build_model(config).parameters()) / 1e6 == pytest.approx(params, abs=0.01)


def test_reduced_setting_shrinks_only_the_hamiltonian_family():
    reduced = EXPERIMENTS["qtips"].settings["reduced"]
    small = network_config(NETWORKS["frac"], "qtips", reduced)
    assert small.blocks == (2, 2, 2) and small.channels == (8, 16, 28) and small.pool == reduced.pool
    assert network_config(NETWORKS["resnet44"], "qtips", reduced).arch == "resnet44"
    cpu = EXPERIMENTS["qtips"].settings["cpu"]  # the thesis's data and schedule, smaller networks
    medium = network_config(NETWORKS["diffusion"], "qtips", cpu)
    assert medium.blocks == (2, 2, 2) and medium.channels == (16, 32, 56) and medium.pool == 8
    assert cpu.epochs is None and cpu.train_limit is None and cpu.val_limit is None


def test_cost_tables_reproduce_the_thesis_within_two_percent(tmp_path):
    outcome = run_experiment("table6.2", "full", out=tmp_path, log=QUIET)
    e = outcome.experiment
    for row in outcome.rows:
        ours = outcome.cells[row]["stl10"].median("macs")
        assert ours == pytest.approx(e.thesis[row]["stl10"]["macs"], rel=0.02), row
    text, paths = write_report(outcome, tmp_path / "results", "test")
    assert "9341.2" in text and paths["png"].read_bytes()[:4] == b"\x89PNG"
    small = run_experiment("table6.1", "reduced", out=tmp_path, networks="resnet44,diffusion", log=QUIET)
    assert small.cells["diffusion"]["cifar10"].median("macs") == pytest.approx(192.9, rel=0.02)


def test_qtips_reduced_runs_reports_and_resumes(tmp_path):
    e = EXPERIMENTS["qtips"]
    tiny = replace(e.settings["reduced"], epochs=2, train_limit=10, val_limit=10)
    lines: list[str] = []
    outcome = run_experiment("qtips", "reduced", out=tmp_path / "runs", setting=tiny, log=lines.append)
    assert set(outcome.cells) == set(e.rows)
    cell = outcome.cells["frac"]["qtips"]
    assert len(cell.history[0]) == 2 and {"train_accuracy", "val_accuracy"} <= set(cell.history[0][-1])
    assert 0.0 <= cell.median("accuracy") <= 1.0
    text, paths = write_report(outcome, tmp_path / "results", "python -m experiments run qtips")
    assert "Claim check" in text and "Training acc. (%) per epoch" in text and "ResNet-44" in text
    doc = json.loads(paths["json"].read_text())
    assert doc["cells"]["diffusion"]["qtips"]["history"]["0"][1]["epoch"] == 2
    assert paths["png"].stat().st_size > 1000
    lines.clear()
    again = run_experiment("qtips", "reduced", out=tmp_path / "runs", setting=tiny, networks="frac", log=lines.append)
    assert again.cells["frac"]["qtips"].per_seed == cell.per_seed  # read back, not retrained
    assert not any("epoch 1/2" in line for line in lines)


def test_qtips_seg_reduced_runs(tmp_path):
    tiny = replace(EXPERIMENTS["qtips-seg"].settings["reduced"], epochs=1, train_limit=6, val_limit=6)
    outcome = run_experiment("qtips-seg", "reduced", out=tmp_path, setting=tiny, networks="hamiltonian,log", log=QUIET)
    row = outcome.cells["log"]["qtips-seg"].history[0][-1]
    assert {"train_miou", "val_miou", "val_pixel_accuracy"} <= set(row)
    text, _ = write_report(outcome, tmp_path / "results", "test")
    assert "mIoU (%)" in text


@pytest.mark.parametrize("name,networks", [
    ("table5.2", "resnet44,preresnet20,hamiltonian,diffusion,frac"),
    ("table5.1", "hamiltonian-237,hamiltonian-685"),
    ("table5.3", "frac-s0.25,invfrac-s0.75"),
    ("table5.4", "diffusion-4stages"),
    ("table5.5", "resnet110,hamiltonian-218,log-218"),
    ("table5.7", "resnet44,diffusion"),
])
def test_benchmark_tables_reduced_on_tiny_data(benchmarks, tmp_path, name, networks):
    outcome = run_experiment(name, "reduced", out=tmp_path, networks=networks, data_dirs={"*": benchmarks},
                             log=QUIET)
    e = outcome.experiment
    for row in outcome.rows:
        for column in e.columns:
            cell = outcome.cells[row][column.key]
            assert cell.per_seed[0]["accuracy"] is not None and len(cell.history[0]) == 1
    text, _ = write_report(outcome, tmp_path / "results", "test")
    first = outcome.rows[0]
    assert f"/ {e.thesis[first][e.columns[0].key]['accuracy']:.2f}" in text


def test_noise_table_evaluates_the_table_5_2_models(benchmarks, tmp_path):
    clean = run_experiment("table5.2", "reduced", out=tmp_path, networks="diffusion", data_dirs={"*": benchmarks},
                           log=QUIET)
    lines: list[str] = []
    noisy = run_experiment("table5.6", "reduced", out=tmp_path, networks="diffusion",
                           data_dirs={"cifar10": benchmarks, "stl10": benchmarks}, log=lines.append)
    assert not any("epoch 1/1" in line for line in lines)  # the runs were reused
    assert any("test noise σ = 0.02" in line for line in lines)
    assert noisy.cells["diffusion"]["cifar10"].run_dirs == clean.cells["diffusion"]["cifar10"].run_dirs


def _bdd100k_folder(root: Path) -> Path:
    """A tiny BDD100K 10k-layout folder: rendered driving scenes and their train-id masks."""
    import cv2

    from nlseg.data.synthetic.scene import render_scene

    for split, count in (("train", 3), ("val", 2)):
        (root / "images" / "10k" / split).mkdir(parents=True)
        (root / "labels" / "sem_seg" / "masks" / split).mkdir(parents=True)
        for i in range(count):
            rgb, labels = render_scene([5, len(split), i], (16, 24))
            cv2.imwrite(str(root / "images" / "10k" / split / f"{split}{i}.jpg"), rgb[:, :, ::-1])
            cv2.imwrite(str(root / "labels" / "sem_seg" / "masks" / split / f"{split}{i}.png"), labels)
    return root


def test_bdd100k_table_on_a_bdd100k_layout_folder(tmp_path):
    outcome = run_experiment("table5.8", "reduced", out=tmp_path, networks="hamiltonian,invfrac",
                             data_dirs={"bdd100k": _bdd100k_folder(tmp_path / "bdd100k")}, log=QUIET)
    final = outcome.cells["invfrac"]["bdd100k"].per_seed[0]
    assert set(final) == {"pixel_accuracy", "soft_iou_image", "soft_iou", "miou"}
    assert final["pixel_accuracy"] is not None and final["soft_iou_image"] is not None
    assert outcome.protocol.name == "authors"  # the default: 255 trained as a 20th class
    assert outcome.cells["invfrac"]["bdd100k"].specs[0]["model"]["num_classes"] == 20
    text, paths = write_report(outcome, tmp_path / "results", "test")
    assert "soft IoU per image (%)" in text and "/ 64.40" in text and "**authors**" in text
    assert paths["md"].name == "table5.8-reduced-authors.md"
    text_protocol = run_experiment("table5.8", "reduced", out=tmp_path, networks="hamiltonian",
                                   data_dirs={"bdd100k": tmp_path / "bdd100k"}, log=QUIET, protocol="thesis-text")
    assert text_protocol.cells["hamiltonian"]["bdd100k"].specs[0]["model"]["num_classes"] == 19


def test_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(InputError, match="--data-dir"):
        run_experiment("table5.2", "reduced", out=tmp_path, networks="hamiltonian", log=QUIET)
    with pytest.raises(InputError, match="--networks"):
        run_experiment("qtips", "reduced", out=tmp_path, networks="resnet50", log=QUIET)
    for argv, flag in ((["run", "table9"], "EXPERIMENT"), (["run", "qtips", "--setting", "huge"], "--setting"),
                       (["run", "qtips", "--seeds", "a"], "--seeds"),
                       (["run", "table5.2", "--data-dir", str(tmp_path / "missing")], "--data-dir")):
        with pytest.raises(SystemExit) as exc:
            experiments_main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.startswith(f"error: {flag}") and len(err.strip().splitlines()) == 1


def test_cli_writes_markdown_png_and_json(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        experiments_main(["run", "table6.2", "--setting", "full", "--results", str(tmp_path)])
    assert exc.value.code in (0, None)
    out = capsys.readouterr().out
    assert "Table 6.2" in out and "wrote" in out
    assert {p.name for p in tmp_path.iterdir()} == {"table6.2-full.md", "table6.2-full.png", "table6.2-full.json"}
    assert json.loads((tmp_path / "table6.2-full.json").read_text())["experiment"] == "table6.2"


def test_protocols_change_what_the_text_and_the_code_disagree_on():
    from experiments.protocols import AUTHORS, DIFFERENCES, THESIS_TEXT
    from experiments.runner import recipe_for
    from nlseg.ops.omega import EULER_GAMMA

    full = EXPERIMENTS["qtips"].settings["full"]
    text = network_config(NETWORKS["log"], "qtips", full, THESIS_TEXT)
    code = network_config(NETWORKS["log"], "qtips", full, AUTHORS)
    assert (text.h, text.head_pool, text.log_gamma) == (0.06, 8, EULER_GAMMA)
    assert (code.h, code.head_pool, code.pool) == (0.05, 2, 2) and code.log_gamma == pytest.approx(0.1 * EULER_GAMMA)
    assert network_config(NETWORKS["frac"], "qtips", full, AUTHORS).log_gamma == EULER_GAMMA
    assert network_config(NETWORKS["resnet44"], "qtips", full, AUTHORS) == network_config(NETWORKS["resnet44"], "qtips", full)
    assert network_config(NETWORKS["log"], "cifar10", full, AUTHORS).h == 0.06  # h = 0.05 is the Q-tips script's
    r_text, r_code = recipe_for("qtips", full, THESIS_TEXT), recipe_for("qtips", full, AUTHORS)
    assert r_text.input_noise == r_code.input_noise == 0.3  # fresh noise under both
    assert (r_text.subtract_mean, r_text.flip, r_text.decay_convention, r_text.decay_classifier) == (True, True, "eq4.9", True)
    assert (r_code.subtract_mean, r_code.flip, r_code.decay_convention, r_code.decay_classifier) == (False, False, "keras", False)
    assert recipe_for("qtips", full, AUTHORS, "resnet44").weight_decay == 1e-4
    assert recipe_for("cifar10", full, AUTHORS).subtract_mean  # mean and flips stay on CIFAR
    assert len({d.point for d in DIFFERENCES}) == len(DIFFERENCES)


def test_finished_runs_are_taken_from_the_report_json_on_a_fresh_checkout(tmp_path):
    from experiments.report import report_stem

    tiny = replace(EXPERIMENTS["qtips"].settings["reduced"], epochs=1, train_limit=6, val_limit=6, seeds=(0, 1))
    results = tmp_path / "results"
    written: list[tuple[str, ...]] = []

    def report(partial):
        written.append(tuple(f"{r}:{s}" for r in partial.rows for s in sorted(partial.cells[r]["qtips"].history)))
        write_report(partial, results, "test")

    first = run_experiment("qtips", "reduced", out=tmp_path / "a", setting=tiny, networks="hamiltonian,diffusion",
                           log=QUIET, on_run=report)
    # seed 0 of every network before seed 1; the report rewritten after every run
    assert written == [("hamiltonian:0",), ("hamiltonian:0", "diffusion:0"),
                       ("hamiltonian:0", "hamiltonian:1", "diffusion:0"),
                       ("hamiltonian:0", "hamiltonian:1", "diffusion:0", "diffusion:1")]
    previous = results / f"{report_stem('qtips', 'reduced', 'authors')}.json"
    assert previous.is_file()
    lines: list[str] = []
    again = run_experiment("qtips", "reduced", out=tmp_path / "fresh", setting=tiny, networks="diffusion", seeds=(1,),
                           log=lines.append, previous=previous)
    assert not any("epoch 1/1" in line for line in lines) and any("taken from" in line for line in lines)
    assert not (tmp_path / "fresh").exists()
    # the other runs recorded there stay in the outcome, so a rewritten report loses nothing
    assert set(again.rows) == {"hamiltonian", "diffusion"}
    for row in again.rows:
        assert again.cells[row]["qtips"].history == first.cells[row]["qtips"].history
        assert set(again.cells[row]["qtips"].reused.values()) == {"report JSON"}
    # a record written under another protocol detail (e.g. another stick style) is not used
    doc = json.loads(previous.read_text())
    doc["protocol_detail"]["qtips_style"]["widths"] = [4, 8]
    altered = tmp_path / "altered.json"
    altered.write_text(json.dumps(doc))
    lines.clear()
    run_experiment("qtips", "reduced", out=tmp_path / "other", setting=tiny, networks="hamiltonian", seeds=(0,),
                   log=lines.append, previous=altered)
    assert any("epoch 1/1" in line for line in lines)
    # other settings (here the number of epochs) are not taken from the record
    longer = replace(tiny, epochs=2)
    lines.clear()
    run_experiment("qtips", "reduced", out=tmp_path / "fresh", setting=longer, networks="hamiltonian", seeds=(0,),
                   log=lines.append, previous=previous)
    assert any("epoch 2/2" in line for line in lines)


def test_unknown_protocol_is_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        experiments_main(["run", "qtips", "--protocol", "folklore"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("error: --protocol") and len(err.strip().splitlines()) == 1
