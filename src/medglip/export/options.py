"""What to export (:class:`ExportOptions`) and the file names of each output."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import MedglipError

#: output → file name. ``nifti``: the label map; ``json``: its sidecar (always written); ``seg`` /
#: ``sr``: DICOM-SEG and Structured Report (DICOM input only); ``png``: the label image of a 2D input;
#: ``volume``: the input volume itself as NIfTI (for a viewer that reads no DICOM).
FILES: dict[str, str] = {
    "nifti": "labels.nii.gz",
    "json": "labels.json",
    "seg": "seg.dcm",
    "sr": "sr.dcm",
    "png": "masks.png",
    "volume": "volume.nii.gz",
}
#: the outputs a caller may ask for; ``auto``: every one the input allows except ``volume``
OUTPUTS: tuple[str, ...] = ("auto", "nifti", "seg", "sr", "png", "volume")
#: what each kind of input can give (``volume`` only on request)
VOLUME_OUTPUTS = ("nifti", "seg", "sr", "volume")
IMAGE_OUTPUTS = ("png", "seg")


@dataclass(frozen=True)
class ExportOptions:
    """How results become files.

    Attributes:
        outputs: the outputs wanted (:data:`OUTPUTS`); None (or ``auto`` among them): every one the
            input allows except ``volume`` (a volume: ``nifti``, and ``seg`` + ``sr`` for DICOM input;
            a 2D image: ``png``, and ``seg`` for DICOM input). ``sr`` brings ``seg`` (the report
            points at it).
        max_voxels: refuse label maps above this many voxels (None: ``MAX_LABEL_VOXELS``).
        compress_level: gzip level of the NIfTI files.
        seg_series_number, sr_series_number: SeriesNumber of the new DICOM series.
        algorithm_parameters: ``name → value`` recorded as the algorithm's parameters in SEG and SR
            (e.g. the checkpoint's preset, the score threshold).
    """

    outputs: tuple[str, ...] | None = None
    max_voxels: int | None = None
    compress_level: int = 6
    seg_series_number: int = 9901
    sr_series_number: int = 9902
    algorithm_parameters: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.outputs is not None:
            bad = [o for o in self.outputs if o not in OUTPUTS]
            if bad:
                raise MedglipError(f"unknown output(s) {', '.join(map(repr, bad))}: choose from {', '.join(OUTPUTS)}")
        if not 0 <= int(self.compress_level) <= 9:
            raise MedglipError(f"compress_level must be 0..9, got {self.compress_level}")

    def wanted(self, allowed: tuple[str, ...], *, dicom: bool, what: str) -> tuple[str, ...]:
        """The outputs to write for an input that allows ``allowed`` (``dicom``: it is DICOM).

        Raises:
            MedglipError: an output this input cannot give (``seg`` / ``sr`` of a NIfTI, ``png`` of a
                volume), naming ``what``.
        """
        auto = {o for o in allowed if o != "volume" and (dicom or o not in ("seg", "sr"))}
        if self.outputs is None:
            return tuple(o for o in allowed if o in auto)
        want = set(self.outputs) - {"auto"} | ({"seg"} if "sr" in self.outputs else set())
        if "auto" in self.outputs:
            want |= auto
        for o in sorted(want):
            if o not in allowed:
                kind = "a volume" if "nifti" in allowed else "a 2D image"
                raise MedglipError(f"{what}: {o!r} cannot be made for {kind}; it gives {', '.join(allowed)}")
            if o in ("seg", "sr") and not dicom:
                raise MedglipError(
                    f"{what}: {o!r} needs DICOM input (a DICOM file or series folder, which it "
                    "references); this input is not DICOM"
                )
        return tuple(o for o in allowed if o in want)


def parse_outputs(text: str | None) -> tuple[str, ...] | None:
    """``"nifti,seg,sr"`` → ``("nifti", "seg", "sr")``; ``None`` / ``""`` / ``"auto"`` → None (the
    default of :class:`ExportOptions`); ``"auto,volume"``: the defaults and the volume. Unknown names
    raise :class:`MedglipError`."""
    if text is None or not str(text).strip() or str(text).strip().lower() == "auto":
        return None
    items = [t.strip().lower() for t in str(text).replace(";", ",").split(",") if t.strip()]
    ExportOptions(outputs=tuple(items))
    return tuple(dict.fromkeys(items))
