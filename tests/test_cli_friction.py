"""The CLI's frictions of issues 22/23, each with the test that shows it gone: a table of findings instead of a
JSON dump, JSON on request, a volume's overlay, one phrase option, `show` under the dataset with every case id
form, training progress with elapsed and remaining time, help written from the registries."""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path

import pytest
import typer
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

import medglip
from medglip.cli import app
from medglip.infer import Grounder

SAMPLES = Path(medglip.__file__).parent / "samples" / "pyradiomics"
runner = CliRunner()


@pytest.fixture(scope="module")
def oracle(brain1, one_torch_thread):
    return brain1["grounder"]


@pytest.fixture
def cli(oracle, monkeypatch):
    monkeypatch.setattr(Grounder, "from_pretrained", classmethod(lambda cls, run, **kw: oracle))

    def run(*args: str, code: int = 0):
        r = runner.invoke(app, [str(a) for a in args])
        assert r.exit_code == code, r.output + repr(r.exception)
        return r
    return run


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """The shipped samples built: brain1 and breast1 train, brain2 (declared test) held out."""
    from medglip.dataset import BuildConfig, build

    out = tmp_path_factory.mktemp("friction") / "ds"
    build(BuildConfig(source=str(SAMPLES), layout="manifest", split_ratios=(1, 0, 0), negative_ratio=0.5), out)
    return out


def _volume_args(tmp_path: Path, *more: str) -> list[str]:
    return ["ground", str(SAMPLES / "brain1_image.nrrd"), "-p", "brain tumor", "-p", "brain", "-p", "liver",
            "--checkpoint", str(tmp_path / "run"), "--modality", "MR", *more]


def test_ground_prints_one_rounded_line_per_finding_not_the_json(cli, tmp_path):
    r = cli(*_volume_args(tmp_path, "--json", str(tmp_path / "g.json")))
    payload = json.loads((tmp_path / "g.json").read_text())
    objects, findings = payload["objects"], payload["findings"]  # the findings every surface shows
    assert {o["phrase"] for o in objects} == {f["phrase"] for f in findings} == {"brain tumor", "brain"}
    lines = r.stdout.splitlines()  # CliRunner's stdout is a pipe: tab-separated rows
    assert lines[0].split("\t") == ["finding", "phrase", "score", "where", "size"]
    rows = [ln.split("\t") for ln in lines[1:]]
    assert [row[:2] for row in rows] == [[f["id"], f["phrase"]] for f in findings] + [["–", "liver"]]
    for row, f in zip(rows, findings):
        assert float(row[2]) == round(f["score"], 2) and "slice" in row[3] and row[4].endswith(" mm")
        assert row[3].count("left") + row[3].count("right") <= 1  # the side said once
    assert rows[-1][2] == "not found"
    assert "{" not in r.stdout and not re.search(r"\d\.\d{3,}", r.stdout)  # no JSON, no float32 noise
    assert f"{len(findings)} finding(s)" in r.stderr


def test_ground_json_goes_to_a_file_or_alone_to_stdout(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli(*_volume_args(tmp_path, "--json", "-"))
    payload = json.loads(r.stdout)  # nothing but the JSON
    assert not (tmp_path / "-").exists()  # `-` is stdout, not a file of that name
    assert {o["phrase"] for o in payload["objects"]} == {"brain tumor", "brain"}
    r = cli(*_volume_args(tmp_path, "--json", str(tmp_path / "g.json")))
    assert json.loads((tmp_path / "g.json").read_text())["objects"] == payload["objects"]
    assert r.stdout.startswith("finding\tphrase")


def test_overlay_of_a_volume_is_a_sheet_of_the_slices_with_findings(cli, tmp_path):
    from medglip.show import TILE_SIZE

    r = cli(*_volume_args(tmp_path, "--overlay", str(tmp_path / "v.png"), "--json", str(tmp_path / "v.json")))
    objects = json.loads((tmp_path / "v.json").read_text())["objects"]
    held = sorted({b["slice"] for o in objects for b in o["slice_boxes"]})
    n = min(len(held), 16)
    cols = math.ceil(math.sqrt(n))
    assert Image.open(tmp_path / "v.png").size == (cols * TILE_SIZE, math.ceil(n / cols) * TILE_SIZE)
    assert f"overlay: {tmp_path / 'v.png'}" in " ".join(r.stderr.split())


def test_montage_keeps_each_findings_best_slice_when_it_must_choose():
    from types import SimpleNamespace as NS

    from medglip.cli.montage import montage_slices

    long = NS(slice_boxes=[NS(slice_index=k, score=0.5 + (k == 30) * 0.4) for k in range(40)])
    short = NS(slice_boxes=[NS(slice_index=70, score=0.6)])
    chosen = montage_slices([long, short], max_slices=6)
    assert len(chosen) == 6 and {30, 70} <= set(chosen) and chosen == sorted(chosen)
    assert montage_slices([short]) == [70]


def test_the_table_reads_findings_when_the_json_has_them_else_the_detections():
    from medglip.cli.findings import finding_rows

    two_d = {"phrases": [{"phrase": "liver", "boxes": [[168.10000610351562, 20.0, 200.3, 60.7]], "scores": [0.87654]},
                         {"phrase": "spleen", "boxes": [], "scores": []}], "pixel_spacing": [0.5, 0.5]}
    assert finding_rows(two_d) == [("F1", "liver", "0.88", "x 168–200, y 20–61 px", "16.1 × 20.4 mm"),
                                   ("–", "spleen", "not found", "", "")]
    with_findings = {**two_d, "findings": [{"id": "F1", "phrase": "liver", "score": 0.87654, "size_mm": 23.456,
                                            "size_source": "mask", "side": "right", "location": "upper third"}]}
    assert finding_rows(with_findings)[0] == ("F1", "liver", "0.88", "right, upper third", "23.5 mm")


def _phrase_options(command) -> list:
    return [p for p in command.params if p.param_type_name == "option" and "--phrase" in p.opts]


def test_the_phrase_option_is_p_phrase_everywhere_with_the_old_names_hidden(cli, tmp_path):
    commands = typer.main.get_command(app).commands
    for name in ("ground", "report", "show"):
        (opt,) = _phrase_options(commands[name])
        assert set(opt.opts) == {"--phrase", "-p"}, name
    old = next(p for p in commands["report"].params if "--findings" in p.opts)
    assert old.hidden and "-f" in old.opts
    out = tmp_path / "rep"
    cli("report", SAMPLES / "brain1_image.nrrd", "-p", "brain tumor", "-f", "brain", "--checkpoint", tmp_path / "run",
        "--modality", "MR", "--out", out)
    found = {f["phrase"] for f in json.loads((out / "report.json").read_text())["context"]["findings"]}
    assert found == {"brain tumor", "brain"}


def test_show_writes_under_the_dataset_and_takes_every_case_id_form(dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for form in ("brain2", "pyradiomics/brain2"):
        r = runner.invoke(app, ["show", str(dataset), "--case", form])
        assert r.exit_code == 0, r.output
        assert (dataset / "show" / "overview.png").is_file() and not (tmp_path / "show").exists()
        assert all("brain2" in p.name for p in (dataset / "show").glob("pyradiomics_*.png"))
    r = runner.invoke(app, ["show", str(dataset), "--case", "brain3"])
    assert r.exit_code == 2
    said = " ".join(r.output.split())
    assert "brain3" in said and "pyradiomics/brain1 (train)" in said and "pyradiomics/brain2 (test)" in said
    r = runner.invoke(app, ["show", str(dataset), "--case", "brain2", "--split", "train"])
    assert r.exit_code == 2 and "in split 'test'" in " ".join(r.output.split())


def test_the_training_bar_shows_elapsed_and_remaining_time(monkeypatch, tmp_path):
    from medglip.cli import model as cli_model
    from medglip.cli.progress import TrainBar

    buf = io.StringIO()
    monkeypatch.setattr(cli_model, "train_progress", lambda: TrainBar(Console(file=buf, force_terminal=True, width=150)))

    def fake_train(dataset, out, cfg, *, resume, progress):
        progress.start(total=10, done=2)
        progress.step(5, {"loss": 0.5})
        progress.close()
        return out

    monkeypatch.setattr("medglip.train.train", fake_train)
    r = runner.invoke(app, ["train", str(tmp_path), "--out", str(tmp_path / "run"), "--preset", "tiny"])
    assert r.exit_code == 0, r.output
    text = buf.getvalue()
    assert "5/10" in text and "elapsed" in text and "left" in text and "loss 0.5000" in text


def test_the_loop_reports_through_its_hook_and_logs_times_without_one(dataset, tmp_path, caplog):
    import logging

    from medglip.train import TrainConfig, TrainProgress, train

    class Recorder:
        def __init__(self):
            self.calls = []

        def start(self, *, total, done):
            self.calls.append(("start", total, done))

        def step(self, step, metrics):
            self.calls.append(("step", step, round(metrics["loss"], 3) == round(metrics["loss"], 3)))

        def close(self):
            self.calls.append(("close",))

    cfg = TrainConfig(preset="tiny", max_steps=2, batch_size=2, device="cpu", log_every=1, checkpoint_every=100,
                      model_overrides=(("image_size", 64),), mask_weight=0.0)
    hook = Recorder()
    assert isinstance(hook, TrainProgress)
    train(dataset, tmp_path / "a", cfg, progress=hook)
    assert hook.calls == [("start", 2, 0), ("step", 1, True), ("step", 2, True), ("close",)]
    with caplog.at_level(logging.INFO, logger="medglip.train.loop"):
        train(dataset, tmp_path / "b", cfg)
    steps = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
    assert len(steps) == 2 and all(re.search(r"\d:\d\d:\d\d elapsed, \d:\d\d:\d\d left", m) for m in steps), steps


def test_the_training_demo_points_to_the_card_instead_of_printing_it(tmp_path):
    from medglip.demo import run_demo

    buf = io.StringIO()
    run_demo(tmp_path / "demo", train=True, train_model=False, console=Console(file=buf, width=200))
    card = (tmp_path / "demo" / "dataset" / "card.md").read_text()
    text = buf.getvalue()
    assert str(tmp_path / "demo" / "dataset" / "card.md") in text.replace("\n", "")
    assert card.splitlines()[0] not in text and len(text.splitlines()) < 5


def test_help_lists_what_the_registries_hold_now(monkeypatch):
    from medglip.core import intensity
    from medglip.model.config import PRESETS
    from medglip.sources import LAYOUTS

    monkeypatch.setitem(LAYOUTS, "zz_new_layout", LAYOUTS["manifest"])
    monkeypatch.setitem(intensity.CT_WINDOWS, "zz_window", (0.0, 1.0))

    def shown(*args: str) -> str:
        r = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "400"})
        assert r.exit_code == 0, r.output
        return " ".join(r.output.split())

    build = shown("build")
    assert all(name in build for name in LAYOUTS)
    ground = shown("ground")
    assert all(name in ground for name in intensity.CT_WINDOWS)
    assert all(name in shown("train") for name in PRESETS)


def test_window_ranges_are_written_one_way_and_read_both_ways():
    from medglip.cli.options import window_value

    assert window_value("-100:300") == window_value("-100,300") == "-100,300"
    assert window_value("lung") == "lung" and window_value(None) is None
    for name in typer.main.get_command(app).commands:
        r = runner.invoke(app, [name, "--help"], env={"COLUMNS": "400"})
        assert "LOW,HIGH" not in r.output, name
