"""The ``/v1`` endpoints: ground, ground-volume, vqa, report (multipart/form-data in, JSON out).

Every blocking step (saving and unpacking the upload, reading and decoding it, the request-side parts
of VQA and reports) runs on the service's bounded I/O pool (:meth:`.service.Service.run`); the model
runs on the worker (:mod:`.batcher`). Deadlines, cancellation and the memory budget come from the
request's scope (:class:`~.middleware.DeadlineMiddleware`); the work an upload asks of the model (slices,
model passes) is checked before anything is queued (:func:`.work.check_work`, 413). Each route notes what
was asked in the audit record (:func:`.access.audit_note`: phrases, sizes, the upload's hash; no image
data, file name or question text).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse

from ..context import result_json
from ..errors import MedglipError
from .access import audit_note
from .batcher import ServerBusy
from .exports import OutputsField, check_outputs, exported
from .forms import (
    bad,
    check_plane,
    check_question,
    check_score_threshold,
    check_top_k,
    parse_masks,
    parse_modality,
    parse_phrases,
)
from .images import read_upload
from .service import Service, WorkerGrounder, busy, http_error, jsonable, png_base64
from .uploads import Upload, save_upload
from .work import check_work

router = APIRouter(prefix="/v1")

FileField = Annotated[
    UploadFile,
    File(
        description="The image: PNG, JPEG, BMP, TIFF, DICOM, NIfTI (.nii / .nii.gz), "
        "NRRD or MetaImage (.mha); the type is read from the content."
    ),
]
PhrasesField = Annotated[
    list[str],
    Form(
        description='What to find: a JSON list (\'["liver", "left kidney"]\'), a '
        "comma-separated string ('liver, left kidney'), or the field "
        "repeated once per phrase."
    ),
]
ModalityField = Annotated[
    str | None,
    Form(
        description="CT, MR, XR, US, ENDO, DERM or PATH (or an alias such as MRI, "
        "X-ray); default: the DICOM Modality tag, else the model's "
        "modality classifier."
    ),
]
MasksField = Annotated[
    str | None,
    Form(
        description="Also return a mask per box (COCO RLE): true (the model's own "
        "mask head when it has one, else LiteMedSAM), head, medsam "
        "(LiteMedSAM given each box) or false."
    ),
]
ThresholdField = Annotated[
    float | None,
    Form(
        ge=0.0, le=1.0, description="Drop boxes scoring below this (0..1); default: the model's calibrated thresholds."
    ),
]
TopKField = Annotated[int | None, Form(ge=1, description="Keep at most this many boxes per phrase.")]


def guarded(endpoint: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Map every failure of an endpoint to an HTTP answer (see :func:`.service.http_error`)."""

    @functools.wraps(endpoint)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await endpoint(*args, **kwargs)
        except ServerBusy as exc:
            raise busy(exc) from None
        except Exception as exc:
            raise http_error(exc) from None

    return wrapper


def _service(request: Request) -> Service:
    return request.app.state.service


def _read_bounded(upload: Upload, svc: Service, phrases: Any, *, expect: str = "any", plane: str = "axial") -> Any:
    """The upload read (:func:`.images.read_upload`) and the work it asks for checked (:func:`.work.check_work`:
    413 above ``max_slices`` / ``max_model_passes``), before anything is queued for the model."""
    item = read_upload(upload, svc, expect=expect)
    check_work(item, tuple(phrases or ()), svc, filename=upload.filename, plane=plane)
    return item


async def _save(request: Request, svc: Service, file: Any, *, allow_zip: bool = False) -> Upload:
    """The upload saved (and unpacked) on the I/O pool; its hash, kind and size go to the audit record."""
    upload = await save_upload(file, svc.config, allow_zip=allow_zip, pool=svc.pool)
    audit_note(request, upload_sha256=upload.sha256[:16], upload_kind=upload.kind, upload_bytes=upload.size)
    return upload


@router.post("/ground", summary="Ground phrases in a 2D image", response_description="GroundingResult JSON")
@guarded
async def ground(
    request: Request,
    file: FileField,
    phrases: PhrasesField,
    modality: ModalityField = None,
    masks: MasksField = None,
    score_threshold: ThresholdField = None,
    top_k: TopKField = None,
    overlay: Annotated[
        bool, Form(description="Also return `overlay_png`: the image with the boxes drawn, a base64 PNG.")
    ] = False,
    outputs: OutputsField = None,
) -> JSONResponse:
    """Boxes (xyxy, original pixels, pixel edges), scores and optional masks per phrase; with `outputs`
    (`png`, `seg`) the masks as a PNG label image and a DICOM-SEG, base64 in `files`.

    Requests with the same phrases and options that arrive together are grounded in one batch.
    """
    svc = _service(request)
    names = parse_phrases(phrases, svc.config)
    audit_note(request, phrases=list(names), modality=modality)
    svc.check_tokens(names)
    code = parse_modality(modality, svc.modalities)
    given, k = check_score_threshold(score_threshold), check_top_k(top_k)
    thr = "calibrated" if given is None else given
    wanted = check_outputs(outputs)
    source = svc.check_masks(parse_masks(masks) or bool(wanted))
    svc.batcher.announce()
    try:
        upload = await _save(request, svc, file)
        try:
            image = await svc.run(lambda: _read_bounded(upload, svc, names, expect="2d"))
        finally:
            upload.cleanup()
        future = svc.batcher.submit_ground(image, names, modality=code, masks=source, score_threshold=thr, top_k=k)
    except ServerBusy as exc:
        raise busy(exc) from None
    finally:
        svc.batcher.withdraw()
    result = await svc.wait(future, upload)
    out = await svc.run(lambda: result_json(result))  # with the findings every surface shows
    if overlay:
        from ..infer.overlay import draw_result

        out["overlay_png"] = await svc.run(lambda: png_base64(draw_result(result)))
    out = _rename_source(out, upload)
    if wanted is not None:
        out.update(await _exports(result, wanted, upload, svc))
    return JSONResponse(jsonable(out))


@router.post(
    "/ground-volume", summary="Ground phrases in a 3D volume", response_description="VolumeGroundingResult JSON"
)
@guarded
async def ground_volume(
    request: Request,
    file: Annotated[
        UploadFile,
        File(
            description="The volume: NIfTI (.nii / .nii.gz), NRRD, MetaImage (.mha), a "
            "multi-frame DICOM, or a .zip of one DICOM series."
        ),
    ],
    phrases: PhrasesField,
    modality: ModalityField = None,
    plane: Annotated[str, Form(description="Display slices to ground: axial, coronal or sagittal.")] = "axial",
    score_threshold: ThresholdField = None,
    masks: Annotated[
        bool,
        Form(description="Refine every slice box into a mask (LiteMedSAM); the 3D masks come back through `outputs`."),
    ] = False,
    outputs: OutputsField = None,
) -> JSONResponse:
    """Slice-by-slice grounding linked into 3D objects (slice range, voxel box, LPS world box in mm); with
    `outputs` the 3D masks as files clinical tools open (NIfTI label map, DICOM-SEG, DICOM SR), base64 in
    `files`, with `labels` (the label map's sidecar) and `notes`."""
    svc = _service(request)
    names = parse_phrases(phrases, svc.config)
    audit_note(request, phrases=list(names), modality=modality, plane=plane)
    svc.check_tokens(names)
    code = parse_modality(modality, svc.modalities)
    given, pl = check_score_threshold(score_threshold), check_plane(plane)
    thr = "calibrated" if given is None else given
    wanted = check_outputs(outputs)
    masks = masks or bool(wanted and set(wanted) - {"volume"})
    upload = await _save(request, svc, file, allow_zip=True)
    try:
        volume = await svc.run(lambda: _read_bounded(upload, svc, names, expect="volume", plane=pl))
        future = svc.submit(
            lambda g: g.ground_volume(volume, names, modality=code, plane=pl, score_threshold=thr, masks=masks)
        )
        result = await svc.wait(future, upload)
        out = await svc.run(lambda: result_json(result))
        out["source"] = upload.filename
        out = _rename_source(out, upload)
        if wanted is not None:
            out.update(await _exports(result, wanted, upload, svc))
    finally:
        upload.cleanup()
    return JSONResponse(jsonable(out))


async def _exports(result: Any, outputs: tuple[str, ...], upload: Any, svc: Service) -> dict[str, Any]:
    """The files of ``outputs`` (:mod:`.exports`; base64, left as they are) with ``labels`` and ``notes``
    naming the upload, never its temporary path; failures mapped to HTTP errors naming the upload."""
    try:
        got = await exported(result, outputs, run=svc.run)
    except Exception as exc:
        raise http_error(exc, upload) from None
    return {**got, "labels": _rename_source(got["labels"], upload), "notes": _rename_source(got["notes"], upload)}


@router.post(
    "/vqa", summary="Answer a question about an image from its grounding", response_description="VQAResult JSON"
)
@guarded
async def vqa(
    request: Request,
    file: FileField,
    question: Annotated[str, Form(description="The question, e.g. 'Is there a tumor in the left kidney?'")],
    modality: ModalityField = None,
    masks: MasksField = None,
    phrases: Annotated[
        list[str] | None,
        Form(
            description="Also ground these, first and in this order "
            "(same formats as `phrases` of /v1/ground): send "
            "the phrases of a /v1/ground call on the same "
            "image and the answer's finding ids (F1, ...) are "
            "that call's."
        ),
    ] = None,
) -> JSONResponse:
    """The question is parsed into ontology phrases, grounded (2D image or volume), and answered from the
    findings (ids F1, ... as in `context.findings`); open questions go to the server's language model when
    one is configured. Adds `visual_prompt_png`: the image (a volume's key slice) with the numbered boxes,
    base64."""
    from ..vqa import ask, parse_question

    svc = _service(request)
    text = check_question(question, svc.config)
    extra = parse_phrases(phrases, svc.config, required=False)
    audit_note(request, question_chars=len(text), modality=modality)
    svc.check_tokens(extra)
    code = parse_modality(modality, svc.modalities)
    source = svc.check_masks(parse_masks(masks))
    try:
        parsed = await svc.run(lambda: parse_question(text, modality=code))
    except MedglipError as exc:
        raise bad("question", str(exc)) from None
    audit_note(request, phrases=list(parsed.phrases))
    upload = await _save(request, svc, file, allow_zip=True)
    try:
        looked_for = tuple(dict.fromkeys((*(extra or ()), *parsed.phrases)))
        image = await svc.run(lambda: _read_bounded(upload, svc, looked_for))
        worker = WorkerGrounder(svc.batcher)

        def run() -> dict[str, Any]:
            res = ask(worker, image, text, modality=code, llm=svc.llm, masks=source, phrases=extra)
            out = res.to_json()
            out["visual_prompt_png"] = png_base64(res.visual_prompt(masks=bool(source)))
            return out

        out = await _in_thread(svc, run, upload)
    finally:
        upload.cleanup()
    return JSONResponse(jsonable(_rename_source(out, upload)))


@router.post("/report", summary="Write a findings report of an image", response_description="Report JSON")
@guarded
async def report(
    request: Request,
    file: FileField,
    findings: Annotated[
        list[str] | None,
        Form(
            description="Phrases to report on (same formats as "
            "`phrases`); default: the phrases the model "
            "was trained on."
        ),
    ] = None,
    modality: ModalityField = None,
    masks: MasksField = None,
    prose: Annotated[
        bool,
        Form(
            description="Also return `prose`: the server's language model rewrites the report (needs an LLM endpoint)."
        ),
    ] = False,
) -> JSONResponse:
    """One sentence per finding or absent phrase, as JSON, `markdown` and `html` (an escaped HTML fragment
    built from the report's data), plus `overlay_png`: the image (a volume's key slice) with the numbered
    boxes, base64."""
    from ..report import make_report

    svc = _service(request)
    names = parse_phrases(findings, svc.config, field="findings", required=False)
    audit_note(request, phrases=None if names is None else list(names), modality=modality, prose=prose)
    svc.check_tokens(names, "findings")
    if names is None and not svc.grounder.known_phrases:
        raise bad(
            "findings",
            "none given, and this model has no list of trained phrases (RUN/categories.json) "
            "to report on; send e.g. 'liver, left kidney'",
        )
    code = parse_modality(modality, svc.modalities)
    source = svc.check_masks(parse_masks(masks))
    if prose and svc.llm is None:
        raise bad("prose", "this server has no language model configured (MEDGLIP_LLM_ENDPOINT, MEDGLIP_LLM_MODEL)")
    upload = await _save(request, svc, file, allow_zip=True)
    try:
        looked_for = svc.grounder.known_phrases if names is None else names
        image = await svc.run(lambda: _read_bounded(upload, svc, looked_for))
        worker = WorkerGrounder(svc.batcher)

        def run() -> dict[str, Any]:
            rep = make_report(
                worker,
                image,
                None if names is None else list(names),
                modality=code,
                masks=source,
                llm=svc.llm if prose else None,
            )
            out = rep.to_json()
            out["markdown"] = rep.markdown
            out["html"] = rep.html  # escaped HTML from the report's data, for the page
            out["overlay_png"] = png_base64(rep.overlay)
            return out

        out = await _in_thread(svc, run, upload)
    finally:
        upload.cleanup()
    return JSONResponse(jsonable(_rename_source(out, upload)))


async def _in_thread(svc: Service, fn: Callable[[], Any], upload: Any) -> Any:
    """Run ``fn`` on the I/O pool, its failures mapped to HTTP errors naming the upload."""
    try:
        return await svc.run(fn)
    except Exception as exc:
        raise http_error(exc, upload) from None


def _rename_source(value: Any, upload: Any) -> Any:
    """Every mention of the upload's temporary path → the upload's file name (also inside text)."""
    if isinstance(value, dict):
        return {k: _rename_source(v, upload) for k, v in value.items()}
    if isinstance(value, list):
        return [_rename_source(v, upload) for v in value]
    if isinstance(value, str) and str(upload.workdir) in value:
        for p in (str(upload.path), str(upload.workdir / "series"), str(upload.workdir)):
            value = value.replace(p, upload.filename)
    return value
