"""Write a volume as a real DICOM series (one MR or CT image per slice), for tests of DICOM outputs.

``write_series(array, geometry, folder)`` places slice ``k`` of an ``(i, j, k)`` array at
``geometry.index_to_world((0, 0, k))`` with the geometry's row / column directions, so reading the
folder back gives the same voxels on the same grid (k possibly reversed: readers sort along the
normal). The headers carry what a PACS needs (patient, study, series, frame of reference, equipment).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid


def write_series(array: np.ndarray, geometry, folder: Path, *, modality: str = "MR", series_uid: str | None = None,
                 positions: list | None = None, description: str = "test series") -> list[Path]:
    """Write ``array`` (``(i, j, k)`` integers) as one DICOM file per slice; returns the files.

    ``positions`` overrides ImagePositionPatient per slice (to make broken series)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    d = geometry.direction_matrix
    study, series, frame = "1.2.826.0.1.3680043.8.498.77", series_uid or generate_uid(), generate_uid()
    sop_class = MRImageStorage if modality == "MR" else CTImageStorage
    files = []
    for k in range(array.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID = sop_class, ExplicitVRLittleEndian
        meta.MediaStorageSOPInstanceUID = generate_uid()
        path = folder / f"IM{k:04d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Test^Brain", "medglip-test", "", "O"
        ds.StudyInstanceUID, ds.StudyDate, ds.StudyTime, ds.StudyID = study, "20240101", "120000", "1"
        ds.AccessionNumber, ds.ReferringPhysicianName = "", ""
        ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber = modality, series, 1
        ds.SeriesDescription, ds.InstanceNumber = description, k + 1
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame, ""
        ds.Manufacturer, ds.PatientPosition, ds.Laterality = "medglip tests", "HFS", ""
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        pos = geometry.index_to_world(np.array([0.0, 0.0, float(k)])) if positions is None else positions[k]
        ds.ImagePositionPatient = [round(float(v), 6) for v in pos]
        ds.ImageOrientationPatient = [round(float(v), 6) for v in (*d[:, 0], *d[:, 1])]
        ds.PixelSpacing = [round(float(geometry.spacing[1]), 8), round(float(geometry.spacing[0]), 8)]  # rows, columns
        ds.SliceThickness = round(float(geometry.spacing[2]), 8)
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        if modality == "MR":
            ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions, ds.MRAcquisitionType = "SE", "NONE", "", "2D"
            ds.EchoTime, ds.RepetitionTime, ds.EchoTrainLength, ds.ImagedNucleus = 10, 500, 1, "1H"
            ds.MagneticFieldStrength = 1.5
        else:
            ds.RescaleIntercept, ds.RescaleSlope, ds.KVP = 0, 1, 120
        plane = np.ascontiguousarray(array[:, :, k].T).astype(np.int16)
        ds.Rows, ds.Columns = plane.shape
        ds.PixelData = plane.tobytes()
        ds.save_as(str(path), enforce_file_format=True)
        files.append(path)
    return files
