"""Make the fixture writers in tests/layouts.py importable as ``from layouts import ...``."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a test module: a bit slower alone, but immune to the many-fold
    OpenMP slowdown when other test processes share the CPU cores."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def brain1(tmp_path_factory):
    """The shipped brain1 MR volume as a real DICOM MR series (folder, files, zip), its lesion label, and a
    Grounder whose volumes are grounded by the oracle of fakes.py (the lesion as "brain tumor" + an
    overlapping "brain" box), shared by the tests of clinical outputs."""
    import io
    import zipfile

    import medglip
    from dicom_series import write_series
    from fakes import oracle_grounder
    from medglip.io import read_image

    samples = Path(medglip.__file__).parent / "samples" / "pyradiomics"
    root = tmp_path_factory.mktemp("brain1")
    image = read_image(samples / "brain1_image.nrrd")
    truth = read_image(samples / "brain1_label.nrrd")
    files = write_series(image.array, image.geometry, root / "series")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for f in files:
            z.write(f, f.name)
    (root / "brain1_series.zip").write_bytes(buf.getvalue())
    return {"root": root, "samples": samples, "image": image, "truth": truth, "series": root / "series",
            "files": files, "zip": root / "brain1_series.zip", "grounder": oracle_grounder(root / "run", truth)}
