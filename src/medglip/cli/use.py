"""Commands that use a model: ground, vqa, report, serve, demo."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from .app import CliError, command, console
from .findings import HEADER, finding_rows, finding_summary
from .options import (
    CHECKPOINT,
    LLM_ENDPOINT,
    LLM_KEY,
    LLM_MODEL,
    MASKS,
    MODALITY,
    WINDOW,
    export_options,
    llm_client,
    load_grounder,
    phrase_option,
    run_dir,
)
from .output import json_to_stdout, print_rows, write_json
from .progress import train_progress

_JSON_HELP = "Write the result as JSON to this file; `--json -` prints it on stdout instead of the table."


def _exists(image: Path) -> None:
    if not image.exists():
        raise CliError(f"{image}: no such file or folder")


def _write_overlay(result, path: Path, window: str | None) -> None:
    """The picture with the findings: the 2D image, or a sheet of the volume's slices that hold findings."""
    from ..infer import VolumeGroundingResult

    if isinstance(result, VolumeGroundingResult):
        from .montage import draw_volume_result

        sheet, slices = draw_volume_result(result, window=window)
        sheet.save(path)
        what = f"slices {', '.join(map(str, slices))}" if slices else "no finding: the middle slice"
        console.print(f"overlay: {path} ({what})", highlight=False)
        return
    from ..infer.overlay import draw_result

    draw_result(result, window=window).save(path)
    console.print(f"overlay: {path}", highlight=False)


@command()
def ground(
    image: Path = typer.Argument(
        ..., help="PNG/JPEG/TIFF, DICOM, or a NIfTI/NRRD volume / DICOM series folder (then 3D grounding)."
    ),
    phrase: list[str] = phrase_option("Phrase to ground; repeatable.", required=True),
    checkpoint: Path | None = CHECKPOINT,
    modality: str | None = MODALITY,
    json_out: Path | None = typer.Option(None, "--json", help=_JSON_HELP),
    overlay: Path | None = typer.Option(
        None, help="Write a PNG with the findings (a volume: a grid of the slices that hold them)."
    ),
    masks: str = MASKS,
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Write the masks as files viewers open (implies --masks auto): volumes labels.nii.gz + "
        "labels.json (+ seg.dcm, sr.dcm for DICOM), 2D images masks.png + labels.json "
        "(+ seg.dcm).",
    ),
    outputs: str | None = typer.Option(
        None,
        help="With --out: which of nifti, seg, sr, png, volume (comma separated; default: all the input allows, "
        "without volume).",
    ),
    max_voxels: int | None = typer.Option(
        None, help="With --out: refuse label maps above this many voxels (default 268,435,456)."
    ),
    score_threshold: float | None = typer.Option(
        None, help="Default: the checkpoint's calibrated threshold of each phrase."
    ),
    top_k: int | None = typer.Option(None, help="Boxes kept per phrase (2D images)."),
    window: str | None = WINDOW,
    device: str = typer.Option("cpu"),
) -> None:
    """Find the regions named by phrases in an image (or a volume): a table of the findings; --json for all of it,
    --out for NIfTI / DICOM-SEG / SR masks.

    Example: medglip ground src/medglip/samples/pyradiomics/brain2_image.nrrd -p "brain tumor" --modality MR --out brain2-masks"""  # noqa: E501  (the example is one line: help shows it, tests/test_docs.py runs it)
    _exists(image)
    checkpoint = run_dir(checkpoint)
    options = export_options(outputs, max_voxels, checkpoint) if out is not None else None
    g, masks_how = load_grounder(
        checkpoint, device=device, masks="auto" if out is not None and masks.strip().lower() == "none" else masks
    )
    res = g.ground_file(
        image,
        phrase,
        modality=modality,
        masks=masks_how,
        score_threshold="calibrated" if score_threshold is None else score_threshold,
        top_k=top_k,
    )
    from ..context import result_json

    payload = result_json(res)  # with the findings (ids F1, ...) every surface shows
    for note in res.untrained:
        console.print(f"[yellow]untrained[/]: {note}")
    if overlay:
        _write_overlay(res, overlay, window)
    if out is not None and options is not None:  # set together above
        from ..export import export_result

        bundle = export_result(res, options=options)
        paths = bundle.write(out)
        payload["files"] = {name: str(p) for name, p in paths.items()}
        for note in bundle.notes:
            console.print(f"[yellow]note[/]: {note}")
        console.print(f"[green]wrote[/] {', '.join(str(p) for p in paths.values())}")
    if json_to_stdout(json_out):
        write_json(payload, json_out)
        return
    rows = finding_rows(payload)
    print_rows(HEADER, rows)
    console.print(finding_summary(rows), highlight=False)
    if json_out is not None:
        write_json(payload, json_out)


@command()
def vqa(
    image: Path = typer.Argument(..., help="PNG/JPEG/TIFF, DICOM, or a NIfTI/NRRD volume / DICOM series folder."),
    question: str = typer.Argument(..., help='e.g. "Is there a tumor in the left lung?"'),
    checkpoint: Path | None = CHECKPOINT,
    modality: str | None = MODALITY,
    masks: str = MASKS,
    score_threshold: float | None = typer.Option(
        None, help="Boxes scoring below this are not findings (default: the checkpoint's calibrated thresholds)."
    ),
    json_out: Path | None = typer.Option(
        None,
        "--json",
        help="Write question, answer and grounded context as JSON to this file (`--json -`: on stdout, alone).",
    ),
    visual_prompt: Path | None = typer.Option(None, help="Write the numbered-box image the answer cites (PNG)."),
    llm_endpoint: str | None = LLM_ENDPOINT,
    llm_model: str | None = LLM_MODEL,
    llm_key: str | None = LLM_KEY,
    device: str = typer.Option("cpu"),
) -> None:
    """Answer a question about an image from grounding (closed questions) or through a VLM (open ones).

    Example: medglip vqa src/medglip/samples/pyradiomics/brain2_image.nrrd "Is there a brain tumor?" --modality MR"""
    from ..vqa import ask

    _exists(image)
    llm = llm_client(llm_endpoint, llm_model, llm_key)
    g, masks_how = load_grounder(checkpoint, device=device, masks=masks)
    res = ask(g, image, question, modality=modality, llm=llm, score_threshold=score_threshold, masks=masks_how)
    if visual_prompt is not None:
        res.visual_prompt(masks=bool(masks_how)).save(visual_prompt)
    if json_to_stdout(json_out):
        write_json(res.to_json(), json_out)
        return
    typer.echo(res.answer.text)
    for note in res.context.untrained:
        console.print(f"[yellow]untrained[/]: {note}")
    console.print(
        f"[dim]{res.question.kind} question; grounded {list(res.question.phrases)}; "
        f"evidence: {', '.join(f'box {n}' for n in res.answer.evidence) or 'none'} (via {res.answer.via})[/]"
    )
    console.print(res.context.text_block("plain"), markup=False)
    if json_out is not None:
        write_json(res.to_json(), json_out)


@command()
def report(
    image: Path = typer.Argument(..., help="PNG/JPEG/TIFF, DICOM, or a NIfTI/NRRD volume / DICOM series folder."),
    phrase: list[str] | None = phrase_option(
        "Structure or finding to look for; repeatable (default: the checkpoint's training phrases)."
    ),
    findings: list[str] | None = typer.Option(None, "--findings", "-f", hidden=True),  # the old name of -p
    checkpoint: Path | None = CHECKPOINT,
    out: Path = typer.Option(
        Path("report"),
        help="Output folder: report.md, report.json, report_overlay.png (and "
        "with --masks the findings' masks: labels.nii.gz / masks.png, "
        "labels.json, seg.dcm, sr.dcm).",
    ),
    modality: str | None = MODALITY,
    masks: str = typer.Option(
        "none",
        "--masks",
        help="Masks per finding: head, medsam, auto or none (mask areas in "
        "mm²); any but none also writes them beside the report as files viewers open "
        "(label n = finding n).",
    ),
    outputs: str | None = typer.Option(
        None, help="With --masks: which of nifti, seg, sr, png, volume (default: all the input allows, without volume)."
    ),
    score_threshold: float | None = typer.Option(
        None, help="Boxes scoring below this are not findings (default: the checkpoint's calibrated thresholds)."
    ),
    prose: bool = typer.Option(False, help="Also rewrite the findings into prose with the chat API (--llm-*)."),
    window: str | None = WINDOW,
    llm_endpoint: str | None = LLM_ENDPOINT,
    llm_model: str | None = LLM_MODEL,
    llm_key: str | None = LLM_KEY,
    device: str = typer.Option("cpu"),
) -> None:
    """A structured findings report (Markdown + JSON + overlay) from grounding an image or a volume.

    Example: medglip report src/medglip/samples/pyradiomics/brain2_image.nrrd -p "brain tumor" --modality MR --out brain2-report"""  # noqa: E501  (the example is one line: help shows it, tests/test_docs.py runs it)
    from ..report import make_report, write_report

    _exists(image)
    llm = llm_client(llm_endpoint, llm_model, llm_key) if prose else None
    if prose and llm is None:
        from ..vqa import LLMNotConfigured

        raise LLMNotConfigured(
            "--prose needs a chat API: pass --llm-endpoint URL --llm-model NAME "
            "(or set MEDGLIP_LLM_ENDPOINT and MEDGLIP_LLM_MODEL)"
        )
    checkpoint = run_dir(checkpoint)
    g, masks_how = load_grounder(checkpoint, device=device, masks=masks)
    rep = make_report(
        g,
        image,
        [*(phrase or []), *(findings or [])] or None,
        modality=modality,
        masks=masks_how,
        score_threshold=score_threshold,
        llm=llm,
        window=window,
        exports=export_options(outputs, None, checkpoint) if masks_how else None,
    )
    paths = write_report(rep, out)
    typer.echo(rep.markdown)
    for note in rep.exports.notes if rep.exports is not None else []:
        console.print(f"[yellow]note[/]: {note}")
    console.print(f"[green]report[/]: {', '.join(str(p) for p in paths.values())}")


@command()
def serve(
    checkpoint: Path | None = CHECKPOINT,
    host: str = typer.Option("127.0.0.1", help="Interface to listen on; keep 127.0.0.1 behind a TLS reverse proxy."),
    port: int = typer.Option(8000),
    masks: bool = typer.Option(
        True,
        help="Let requests ask for LiteMedSAM masks (loaded on first use); masks=head "
        "(the checkpoint's mask head) works either way.",
    ),
    max_upload_mb: float = typer.Option(64.0, help="Largest upload accepted (MiB)."),
    max_batch: int = typer.Option(8, min=1, help="Images grounded together in one forward pass."),
    batch_wait_ms: float = typer.Option(10.0, min=0, help="How long the worker waits to fill a batch."),
    max_queue: int = typer.Option(256, min=1, help="Jobs waiting for the model before requests get 503."),
    max_client_queue: int = typer.Option(
        64,
        min=1,
        help="Jobs ONE client (API key, else address) may have waiting; "
        "beyond it that client gets 503, the others still get in.",
    ),
    max_slices: int = typer.Option(
        2048,
        min=1,
        help="Volume slices one request may ground (413 above it, before any "
        "work; a few-hundred-byte file may declare 32000).",
    ),
    max_model_passes: int = typer.Option(
        8192, min=1, help="Slices (or images) x prompt chunks one request may put through the model (413 above it)."
    ),
    torch_threads: int = typer.Option(0, min=0, help="Intra-op torch threads (0: torch's default)."),
    log_level: str = typer.Option("info", help="Server log level: debug, info, warning, error."),
    max_request_mb: float = typer.Option(
        512.0, help="Largest decoded image of one request (MiB; float64 read as float32)."
    ),
    max_inflight_mb: float = typer.Option(1024.0, help="Decoded MiB of all requests in flight; above it 503."),
    request_timeout: float = typer.Option(120.0, help="Deadline of every request, seconds (504)."),
    body_timeout: float = typer.Option(15.0, help="Longest pause in a request body, seconds (408)."),
    header_timeout: float = typer.Option(10.0, help="Seconds a client has to send its request headers."),
    keep_alive: int = typer.Option(5, help="Idle keep-alive seconds."),
    limit_concurrency: int = typer.Option(64, help="Connections at once; more get 503."),
    io_workers: int = typer.Option(4, help="Threads that unpack, parse and decode uploads."),
    api_keys_file: Path | None = typer.Option(
        None, help="API keys, one 'name key' per line (else MEDGLIP_API_KEYS=name:key,...)."
    ),
    rate_limit: int = typer.Option(
        0, help="Requests per minute per API key (per client address without keys); 0: none."
    ),
    rate_burst: int = typer.Option(
        20, min=1, help="Requests a key may send at once before its per-minute rate applies."
    ),
    cors_origin: list[str] = typer.Option([], help="Web origin whose pages may call the service; repeatable."),
    docs: bool = typer.Option(False, help="Serve /docs (Swagger UI, which the browser fetches from a CDN)."),
    audit_log: Path | None = typer.Option(None, help="Append the audit log (JSON lines) to this file."),
    forwarded_allow_ips: str | None = typer.Option(
        None, help="The TLS proxy's address(es) whose X-Forwarded-* headers are trusted."
    ),
    llm_endpoint: str | None = LLM_ENDPOINT,
    llm_model: str | None = LLM_MODEL,
    llm_key: str | None = LLM_KEY,
    device: str = typer.Option("cpu"),
) -> None:
    """The HTTP service and its web page at / (docs/security.md: keys, limits, TLS proxy, what an upload can do).

    Example: medglip serve --host 127.0.0.1 --port 8000"""
    from ..serve import AccessConfig, ServerSettings, ServiceConfig, load_api_keys
    from ..serve import serve as run_server

    logging.getLogger().setLevel(log_level.upper())
    if torch_threads > 0:
        import torch

        torch.set_num_threads(torch_threads)
    mib = 2**20
    llm = llm_client(llm_endpoint, llm_model, llm_key)
    config = ServiceConfig(
        max_upload_bytes=int(max_upload_mb * mib),
        max_batch=max_batch,
        batch_wait_ms=batch_wait_ms,
        max_queue=max_queue,
        max_client_queue=max_client_queue,
        max_slices=max_slices,
        max_model_passes=max_model_passes,
        max_request_bytes=int(max_request_mb * mib),
        max_inflight_bytes=int(max_inflight_mb * mib),
        request_timeout_s=request_timeout,
        body_timeout_s=body_timeout,
        io_workers=io_workers,
    )
    access = AccessConfig(
        api_keys=load_api_keys(api_keys_file),
        rate_per_minute=rate_limit,
        rate_burst=rate_burst,
        cors_origins=tuple(cors_origin),
        docs=docs,
        audit_log=str(audit_log) if audit_log else None,
    )
    settings = ServerSettings(
        timeout_keep_alive=keep_alive,
        header_timeout_s=header_timeout,
        limit_concurrency=limit_concurrency,
        forwarded_allow_ips=forwarded_allow_ips,
    )
    run_server(
        run_dir(checkpoint),
        host=host,
        port=port,
        config=config,
        llm=llm,
        device=device,
        masks=masks,
        access=access,
        server=settings,
        log_level=log_level,
    )


@command()
def demo(
    out: Path = typer.Option(Path("medglip-demo"), help="Output folder."),
    train: bool = typer.Option(
        False,
        "--train",
        help="Train a small model on the pyradiomics samples instead "
        "(build, draw, train, ground, evaluate, VQA, report; about 5 min).",
    ),
    workers: int = typer.Option(1, min=1),
    steps: int = typer.Option(200, min=1, help="Training steps of the --train model."),
    image_size: int = typer.Option(256, help="Model input size of the --train model."),
    build_only: bool = typer.Option(False, help="With --train: only build and draw the dataset."),
) -> None:
    """The main job on real data medglip ships: the shipped model grounds held-out patients, ground truth beside
    predictions, metrics, VQA and a findings report (about a minute on 2 CPU cores).

    Example: medglip demo --out medglip-demo"""
    from ..demo import run_demo

    run_demo(
        out,
        train=train,
        workers=workers,
        steps=steps,
        image_size=image_size,
        train_model=not build_only,
        console=console,
        train_progress=train_progress(),
    )
