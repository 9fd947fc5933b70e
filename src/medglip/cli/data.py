"""Dataset commands: build (a dataset folder or a recipe; build-recipe its hidden alias), merge, show, resolve,
catalog."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from .app import CliError, command, console, fail, verbose_logging
from .options import config, phrase_option, window_value
from .output import print_rows
from .progress import build_progress

_VERBOSE = typer.Option(False, "--verbose", "-v", hidden=True)  # kept; `medglip -v COMMAND` is the one switch


def _load_mapping(path: Path | None) -> dict[str, dict[str, str]]:
    if path is None:
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CliError(f"{path}: cannot read label mapping: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise CliError(f"{path}: label mapping must be {{source: {{source_label: phrase}}}} (use '*' for every source)")
    return data


def _split_ratios(split: str) -> tuple[float, ...]:
    try:
        ratios = tuple(float(x) for x in split.split(","))
    except ValueError:
        ratios = ()
    if len(ratios) != 3:
        raise CliError(f"--split must be three comma-separated fractions like 0.8,0.1,0.1, got {split!r}")
    return ratios


def _report_build(out: Path, result: Any, *, sources: int | None = None) -> None:
    """What a build built, by source; one ``error:`` line and exit status 1 when a case or a source failed."""
    by_source = ", ".join(f"{k} {v}" for k, v in sorted(result.built_by_source.items())) or "none"
    of = f" in {sources} source(s)" if sources is not None else ""
    console.print(
        f"built {len(result.done)} case(s) ({by_source}), {len(result.skipped)} already done, "
        f"{len(result.failed)} failed, of {result.n_cases}{of}"
    )
    if result.merged:
        m = result.merged
        console.print(
            f"[green]dataset ready[/] in {out}: images {m.images}, annotations {m.annotations}, cases {m.cases}"
        )
        if m.unmapped:
            console.print(f"[yellow]labels not in the ontology (kept as written):[/] {', '.join(m.unmapped)}")
    elif result.pending:
        console.print(
            f"{result.pending} case(s) of other shards remain: run `medglip merge {out}` when all shards finished"
        )
    for sid, reason in sorted(result.failed_sources.items()):
        console.print(f"[red]source not built[/] {sid}: {reason}")
    if result.failed:
        console.print(f"[red]failures[/] (see {out / 'build_report.json'}):")
        for key, reason in sorted(result.failed.items()):
            console.print(f"  {key}: {reason}")
    merge_failures = result.merged.failures if result.merged else 0
    if result.failed or result.failed_sources or merge_failures:
        what = [
            f"{n} {noun}"
            for n, noun in (
                (len(result.failed), "case(s) failed"),
                (len(result.failed_sources), "source(s) not built"),
                (merge_failures, "failure(s) in the merge"),
            )
            if n
        ]
        fail(
            f"{', '.join(what)} (see {out / 'build_report.json'}); fix them and re-run the same command: "
            "what was built is kept",
            code=1,
        )


#: the options that say how ONE source is built; a recipe says it for each of its sources
_SOURCE_OPTIONS = (
    "layout",
    "modality",
    "plane",
    "ct_windows",
    "context_slices",
    "display_window",
    "channels",
    "min_area",
    "min_pixels",
    "negative_ratio",
    "split",
    "test_case",
    "seed",
    "label_map",
    "include_unlabeled",
)


def _given(ctx: typer.Context, names: tuple[str, ...]) -> list[str]:
    """Those of the options ``names`` set on the command line or by the environment, as their flags."""
    flags = {p.name: p.opts[0] for p in ctx.command.params}
    # by name: typer's context is of its own copy of click, whose ParameterSource is not click's
    return [
        flags[n] for n in names if getattr(ctx.get_parameter_source(n), "name", None) in ("COMMANDLINE", "ENVIRONMENT")
    ]


def run_build(job: Any, out: Path, *, workers: int, shard: str | None) -> None:
    """Build ``job`` (a BuildConfig or a Recipe) into ``out`` under a bar of cases, then say what was built
    (the one driver of ``build`` and its alias ``build-recipe``)."""
    from ..dataset import Recipe, Shard
    from ..dataset import build as build_job

    shard_obj = config(Shard.parse, spec=shard) if shard else None
    with build_progress() as (on_start, on_progress):
        result = build_job(job, out, workers=workers, shard=shard_obj, on_progress=on_progress, on_start=on_start)
    _report_build(out, result, sources=len(job.sources) if isinstance(job, Recipe) else None)


_WORKERS = typer.Option(1, min=1, help="Worker processes (cases of all sources in parallel).")
_SHARD = typer.Option(
    None,
    help="Only build shard K/N of the cases (K 0-based; a recipe's sources in order); "
    "`medglip merge OUT` when all are done.",
)


@command()
def build(
    ctx: typer.Context,
    source: Path = typer.Argument(
        ...,
        metavar="SOURCE_OR_RECIPE",
        help="A dataset folder (in one of the layouts of "
        "--layout), or a recipe YAML listing several (docs/building.md).",
    ),
    out: Path = typer.Argument(..., help="Output folder of the grounding dataset."),
    layout: str = typer.Option("auto", help="Source layout: {layouts}."),
    modality: str | None = typer.Option(None, help="Force a modality ({modalities}) on every case."),
    plane: str = typer.Option("axial", help="Slicing plane of 3D volumes: axial, coronal, sagittal."),
    ct_windows: str = typer.Option(
        "lung,soft_tissue,bone",
        help="The three CT windows stacked as the input channels "
        "of CT images, comma separated: {window_names} or LOW:HIGH in HU; a model trains "
        "only on data built with its own.",
    ),
    context_slices: int = typer.Option(
        0,
        min=0,
        help="2.5D input: write each grey volume slice k with slices k-N "
        "and k+N as its first and last channels (0: off); a model trains only on data "
        "built with its own.",
    ),
    display_window: str = typer.Option(
        "auto",
        "--display-window",
        "--ct-window",
        callback=window_value,
        help="CT window `medglip show` draws: auto (by the labelled structures), "
        "{window_names} or LOW:HIGH in HU. Pictures only.",
    ),
    channels: str = typer.Option("first", help="Multi-channel volumes: 'first' channel or 'all' channels."),
    min_area: float = typer.Option(4.0, help="Drop mask components smaller than this many mm²."),
    min_pixels: int = typer.Option(4, help="Drop mask components with fewer pixels."),
    negative_ratio: float = typer.Option(0.2, help="Slices without findings sampled per slice with findings."),
    split: str = typer.Option("0.8,0.1,0.1", help="train,val,test fractions of cases."),
    test_case: list[str] = typer.Option([], help="Case id (or source/case_id) forced into the test split; repeatable."),
    seed: int = typer.Option(0, help="Seed of the case split and of negative sampling."),
    label_map: Path | None = typer.Option(
        None, help="YAML/JSON {source: {source_label: phrase}} applied before the ontology."
    ),
    include_unlabeled: bool = typer.Option(False, help="Also slice cases that have no label file."),
    workers: int = _WORKERS,
    shard: str | None = _SHARD,
    verbose: bool = _VERBOSE,
) -> None:
    """Build a hierarchical grounding dataset (COCO + ODVG + masks + card) from one dataset folder or from a
    recipe of several (whose YAML holds their settings: the options from --layout to --include-unlabeled are a
    folder's). Re-run the same command to resume; add a source to a recipe and re-run to build just it.

    Example: medglip build src/medglip/samples/pyradiomics out/pyradiomics --negative-ratio 0.5 --split 1,0,0"""
    from ..core.pipeline import InputConfig
    from ..dataset import BuildConfig
    from ..dataset.config import mapping_to_tuple
    from ..dataset.plan import job_for
    from ..modality import normalise_modality

    verbose_logging(verbose)
    if source.is_file():  # a recipe: its sources' settings are in it
        given = _given(ctx, _SOURCE_OPTIONS)
        if given:
            raise CliError(
                f"{source} is a recipe: its sources' build settings are written in it (`settings:` and "
                f"per source); {', '.join(given)} apply to a dataset folder only"
            )
        cfg = BuildConfig(source=str(source))  # not used for a recipe
    else:
        windows = config(
            InputConfig.from_window_names, names=tuple(w.strip().replace(":", ",") for w in ct_windows.split(","))
        )
        cfg = config(
            BuildConfig,
            source=str(source),
            layout=layout,
            modality=normalise_modality(modality) if modality else None,
            plane=plane,
            ct_windows=windows.ct_windows,
            context_slices=context_slices,
            display_window=display_window,
            channels=channels,
            min_area_mm2=min_area,
            min_pixels=min_pixels,
            negative_ratio=negative_ratio,
            split_ratios=_split_ratios(split),
            test_cases=tuple(test_case),
            seed=seed,
            label_mapping=mapping_to_tuple(_load_mapping(label_map)),
            include_unlabeled=include_unlabeled,
        )
    run_build(job_for(source, cfg), out, workers=workers, shard=shard)


@command(name="build-recipe", hidden=True)
def build_recipe_cmd(
    recipe: Path = typer.Argument(..., help="Recipe YAML listing the sources (docs/building.md)."),
    out: Path = typer.Argument(..., help="Output folder of the one grounding dataset."),
    workers: int = _WORKERS,
    shard: str | None = _SHARD,
    verbose: bool = _VERBOSE,
) -> None:
    """The former name of `medglip build RECIPE OUT`, kept as an alias.

    Example: medglip build-recipe src/medglip/samples/heldout/recipe.yaml out/heldout"""
    from ..dataset import BuildConfig
    from ..dataset.plan import job_for

    verbose_logging(verbose)
    if not recipe.is_file():
        raise CliError(f"{recipe}: not a recipe file (`medglip build {recipe} OUT` builds a dataset folder)")
    run_build(job_for(recipe, BuildConfig(source=str(recipe))), out, workers=workers, shard=shard)


@command()
def merge(out: Path = typer.Argument(..., help="A build output folder whose shards have all finished.")) -> None:
    """Merge the per-case records of a (sharded) build into annotations, card and report (once every
    `--shard K/N` of `medglip build` has finished).

    Example: medglip merge out/heldout"""
    from ..dataset import merge as run_merge

    if not (out / "build_config.json").exists():
        raise CliError(f"{out}: not a medglip build folder (no build_config.json)")
    m = run_merge(out)
    console.print(f"[green]merged[/] {out}: images {m.images}, annotations {m.annotations}")
    if m.failures:
        raise typer.Exit(1)


@command()
def show(
    dataset: Path = typer.Argument(..., help="A built dataset folder."),
    out: Path | None = typer.Option(None, help="Folder for the PNGs (default: DATASET/show)."),
    split: str | None = typer.Option(
        None, help="train, val or test (default: train; with --case, the split that holds the case)."
    ),
    n: int = typer.Option(8, help="How many images (seeded sample)."),
    case: list[str] = typer.Option(
        [], help="Only these cases, as cases.json names them (source/case) or by case id alone; repeatable."
    ),
    phrase: list[str] = phrase_option("Only images with these phrases; repeatable."),
    image_id: list[int] = typer.Option([], help="These image ids; repeatable."),
    negatives: bool = typer.Option(False, help="Include images without findings."),
    seed: int = typer.Option(0),
) -> None:
    """Draw images of a built dataset with their boxes, masks and phrases to PNG.

    Example: medglip show medglip-demo/dataset --split test --n 12 --out pics"""
    from ..show import show as run_show

    paths = run_show(
        dataset,
        out,
        split=split,
        image_ids=image_id or None,
        case_ids=case or None,
        phrases=phrase or None,
        n=n,
        positives_only=not negatives,
        seed=seed,
    )
    for p in paths:
        console.print(str(p), highlight=False)


@command()
def resolve(
    name: list[str] = typer.Argument(..., help="Source label names, e.g. kidney_left GTVp 'enhancing tumor'."),
    source: str | None = typer.Option(None, help="Source dataset name (for per-source meanings)."),
    context: list[str] = typer.Option([], help="Other label names of the same case."),
    as_json: bool = typer.Option(False, "--json", help="Print the resolutions as JSON."),
) -> None:
    """Show how label names map onto the ontology (phrase, hierarchy, level, laterality).

    Example: medglip resolve gluteus_maximus_left Kidney_R GTVp "enhancing tumor" --source BraTS2021"""
    from ..ontology import load_ontology

    onto = load_ontology()
    rows: list[dict[str, Any]] = []
    for nm in name:
        res = onto.resolve(nm, source=source, context=tuple(context) or tuple(name))
        rows.append(
            {
                "name": nm,
                "phrase": res.phrase,
                "class": res.class_name,
                "region": res.region,
                "level": res.level,
                "laterality": res.laterality,
                "hierarchy": list(res.hierarchy),
                "mapped": res.mapped,
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    header = ("source name", "phrase", "level", "class", "region", "hierarchy")
    table = Table(*header)
    for r in rows:
        table.add_row(
            r["name"],
            r["phrase"] if r["mapped"] else f"[yellow]{r['phrase']} (unmapped)",
            r["level"],
            r["class"],
            r["region"],
            " › ".join(r["hierarchy"]),
        )
    print_rows(
        header,
        [
            (
                r["name"],
                r["phrase"] if r["mapped"] else f"{r['phrase']} (unmapped)",
                r["level"],
                r["class"],
                r["region"],
                " › ".join(r["hierarchy"]),
            )
            for r in rows
        ],
        table,
    )


@command()
def catalog(
    modality: list[str] = typer.Option([], help="Only data sets of this modality ({modalities}); repeatable."),
    as_json: bool = typer.Option(False, "--json", help="Print the entries as JSON."),
    scan: Path | None = typer.Option(None, help="Find the catalogue's data sets in this folder (and 2 levels below)."),
    recipe_out: Path | None = typer.Option(None, help="With --scan: write a starter recipe for what was found."),
) -> None:
    """List the public data sets medglip knows (layout, real labels, licence, where to get them), or find them on disk.
    On a terminal a table; in a pipe or a file, full rows as tab-separated values with a header line.

    Example: medglip catalog --modality MR"""
    from ..catalog import load_catalog
    from ..catalog import scan as find
    from ..modality import normalise_modality

    if recipe_out and not scan:
        raise CliError("--recipe-out needs --scan DIR (the folder holding your data sets)")
    wanted = {normalise_modality(m) for m in modality}
    entries = [e for e in load_catalog() if not wanted or wanted & set(e.modalities)]
    if scan:
        _scan(find(scan), scan, recipe_out, as_json)
        return
    if as_json:
        typer.echo(json.dumps([e.to_json() for e in entries], indent=1, ensure_ascii=False))
        return
    table = Table()
    table.add_column("id", no_wrap=True)
    table.add_column("name")
    table.add_column("modalities")
    table.add_column("layout", no_wrap=True)
    table.add_column("labels")
    table.add_column("licence", max_width=32)
    for e in entries:
        names = ", ".join(e.label_names[:4]) + (f", … ({len(e.labels)})" if len(e.labels) > 4 else "")
        table.add_row(e.id, e.name, " ".join(e.modalities), e.layout, names, e.licence)
    # in a pipe or a file: every label, every word of the licence
    print_rows(
        ("id", "name", "modalities", "layout", "labels", "licence"),
        [(e.id, e.name, " ".join(e.modalities), e.layout, ", ".join(e.label_names), e.licence) for e in entries],
        table,
    )
    console.print(f"{len(entries)} data set(s); `medglip catalog --json` gives urls and citations")


def _scan(hits: list, scan: Path, recipe_out: Path | None, as_json: bool) -> None:
    """``catalog --scan``: what was found (and ``--recipe-out``: a starter recipe for it)."""
    rows = [{"path": str(h.path), "layout": h.layout, "dataset": h.entry.id if h.entry else None} for h in hits]
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
    else:
        header = ("folder", "layout", "catalogue data set")
        table = Table(*header)
        for r in rows:
            table.add_row(r["path"], r["layout"], r["dataset"] or "[yellow]not in the catalogue")
        print_rows(header, [(r["path"], r["layout"], r["dataset"] or "not in the catalogue") for r in rows], table)
    if recipe_out:
        from ..dataset.recipe import starter_recipe

        text = starter_recipe(hits, name=scan.resolve().name).to_yaml()
        recipe_out.write_text(text, encoding="utf-8")
        console.print(
            f"[green]wrote[/] {recipe_out} ({len(hits)} source(s)); build it with `medglip build {recipe_out} OUT`"
        )
