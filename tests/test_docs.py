"""README.md is the front door and docs/ the reference: every relative link in them resolves (files and
``#anchors``), every ``medglip`` command they name exists and takes the options they give it, the
catalogue's size is written as it is, every command's ``--help`` shows one example that would run, and
every page moved out of the README is reachable from it."""

from __future__ import annotations

import re
import shlex
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote

import click
import pytest
import typer
from typer.testing import CliRunner

from medglip.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
INLINE = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
#: ``medglip COMMAND`` where a shell command starts (a line, after ``;`` ``&&`` ``|`` ``(`` ``$``), and
#: ``python -m medglip COMMAND`` / ``torchrun ... -m medglip COMMAND``
COMMAND = re.compile(r"(?:^|[;&|($]|\s-m|\bthen|\bdo)[ \t]*medglip[ \t]+([a-z][a-z0-9-]*)", re.M)
OPTION = re.compile(r"(?<![\w-])(--?[a-zA-Z][a-zA-Z0-9-]*)")


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code spans (links there are not links)."""
    return INLINE.sub(" ", FENCE.sub(" ", text))


def _code(text: str) -> list[str]:
    """Every line of every fenced block, and every inline code span."""
    out = []
    for m in FENCE.finditer(text):
        out += m.group(0).splitlines()[1:-1]
    out += [m.group(2) for m in INLINE.finditer(FENCE.sub(" ", text))]
    return out


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@lru_cache(maxsize=None)
def _anchors(path: Path) -> frozenset[str]:
    slugs, seen = set(), {}
    for line in FENCE.sub(" ", path.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            s = _slug(m.group(1))
            n = seen.get(s, 0)
            seen[s] = n + 1
            slugs.add(s if n == 0 else f"{s}-{n}")
    return frozenset(slugs)


def _links(page: Path) -> list[str]:
    return [m.group(1) for m in LINK.finditer(_prose(page.read_text(encoding="utf-8")))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page):
    broken = []
    for target in _links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / unquote(path_part)).resolve() if path_part else page
        if not dest.exists():
            hint = " (draw it: python scripts/draw_readme_picture.py)" if dest.name == "grounding_example.png" else ""
            broken.append(f"{target}: no such file{hint}")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading with anchor #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_link_checker_finds_what_it_should(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# A `b` c?\n[x](p.md#a-b-c) ![y](img.png) [z](https://e.org) `[no](link.md)`\n"
                    "```\n[no](x.md)\n```\n")
    assert _links(page) == ["p.md#a-b-c", "img.png", "https://e.org"]
    assert _anchors(page) == {"a-b-c"}


def _commands() -> dict[str, click.Command]:
    return dict(typer.main.get_command(app).commands)


def _options(command: click.Command) -> set[str]:
    opts = {"--help"}
    for p in command.params:
        opts.update(p.opts)
        opts.update(p.secondary_opts)
    return opts


def _invocations(snippet: str) -> list[tuple[str, list[str]]]:
    """``(command, options)`` of every ``medglip COMMAND ...`` in a line of code: the options up to the
    end of that shell command (a pipe, ``;``, ``&&``, a comment or a table cell's end)."""
    snippet = snippet.replace("\\|", "/")  # an escaped pipe inside a Markdown table cell: alternatives
    snippet = "\n".join(re.sub(r"(^|\s)#.*", "", line) for line in snippet.splitlines())  # shell comments
    out = []
    for m in COMMAND.finditer(snippet):
        rest = re.split(r"\s#|\|\||&&|[|;`]|\s/\s", snippet[m.end():], maxsplit=1)[0]
        out.append((m.group(1), OPTION.findall(rest)))
    return out


def test_the_command_finder_reads_shell_and_tables():
    assert _invocations("torchrun --nproc_per_node=8 -m medglip train out/ds --out runs/a --epochs 12") == [
        ("train", ["--out", "--epochs"])]
    assert _invocations("medglip build X Y [--layout auto\\|msd] --workers 2 | tee log  # --not") == [
        ("build", ["--layout", "--workers"])]
    assert _invocations("medglip-demo/report.md medglip.infer pip install medglip; x + medglip version") == []
    assert _invocations("medglip pack a b   # the compact model medglip ships") == [("pack", [])]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_command_named_exists_with_its_options(page):
    commands, wrong = _commands(), []
    for snippet in _code(page.read_text(encoding="utf-8")):
        for name, opts in _invocations(snippet):
            if name not in commands:
                wrong.append(f"`medglip {name}`: no such command (medglip --help lists {', '.join(sorted(commands))})")
                continue
            known = _options(commands[name])
            wrong += [f"`medglip {name} {o}`: no such option" for o in opts if o not in known]
    assert not wrong, f"{page.relative_to(ROOT)}: " + "; ".join(sorted(set(wrong)))


def test_the_catalogue_size_is_written_as_it_is():
    from medglip.catalog import load_catalog

    n = len(load_catalog())
    for page in PAGES:
        for m in re.finditer(r"(\d+) public (?:segmentation )?data sets", page.read_text(encoding="utf-8")):
            assert int(m.group(1)) == n, f"{page.relative_to(ROOT)} says {m.group(0)}; the catalogue has {n}"


def test_the_readme_is_a_front_door():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    assert "](docs/images/grounding_example.png)" in text and "scripts/draw_readme_picture.py" in text
    assert (ROOT / "scripts" / "draw_readme_picture.py").is_file()
    ci = (ROOT / ".ci" / "run").read_text()
    # the two set-up commands, as CI runs them
    assert "pip install -e . && medglip demo" in text and "python -m pip install -q -e ." in ci and "medglip demo" in ci
    tests = 'pip install -e ".[test]" && bash scripts/install_browser.sh && bash scripts/install_dicom3tools.sh && python -m pytest -q'
    assert tests in text
    for step in ('-e ".[test]"', "scripts/install_browser.sh", "scripts/install_dicom3tools.sh", "python -m pytest -q"):
        assert step in ci
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in _links(README) if t.partition("#")[0]}
    unlinked = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"
    assert "<!-- shipped-model figures" in text


def _example(command: click.Command) -> str:
    lines = [ln.strip() for ln in (command.help or "").splitlines() if ln.strip().startswith("Example:")]
    assert len(lines) == 1, f"{command.name}: its help needs one 'Example: medglip {command.name} ...' line"
    return lines[0].removeprefix("Example:").strip()


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_help_shows_an_example_that_would_run(name):
    command = _commands()[name]
    example = _example(command)
    args = shlex.split(example)
    assert args[:2] == ["medglip", name], example
    unknown = [a.split("=")[0] for a in args[2:] if a.startswith("-") and a.split("=")[0] not in _options(command)]
    assert not unknown, f"{example}: {name} has no {unknown}"
    # the paths it names inside the repository exist (the shipped samples, recipes)
    for a in args[2:]:
        if a.startswith(("src/", "recipes/", "scripts/")) and not a.startswith("src/medglip/weights/"):
            assert (ROOT / a).exists(), f"{example}: {a} does not exist"
    shown = " ".join(CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "200"}).output.split())
    assert f"Example: {' '.join(example.split())}" in shown


def test_the_readme_python_example_runs_as_written(tmp_path, monkeypatch, capsys):
    # README's Python block, verbatim but for its sample paths made absolute (it runs in a scratch folder,
    # where it writes brain2-masks/): the public API it shows must keep working
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert block, "README.md has no Python example"
    code = block.group(1).replace('"src/medglip/', f'"{ROOT}/src/medglip/')
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "brain2-masks" / "labels.nii.gz").is_file()
    last = capsys.readouterr().out.strip().splitlines()[-1]  # the LGG slice's boxes and scores: its tumour is found
    assert re.match(r"\[\[\s*[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s*\]", last), last
