"""The catalogue of public segmentation data sets a Med-GLIP-5M-style corpus draws on.

Data, not code: ``catalog/datasets.yaml`` lists each data set's id, name, modalities, body regions,
layout adapter, real label names (with their values), licence, where to get it and its citation.

>>> from medglip.catalog import load_catalog, get_entry
>>> len(load_catalog()) >= 40
True
>>> get_entry("kits23").labels
((1, 'kidney'), (2, 'tumor'), (3, 'cyst'))
"""

from .entries import CatalogEntry, get_entry, load_catalog
from .scan import ScanHit, scan

__all__ = ["CatalogEntry", "ScanHit", "get_entry", "load_catalog", "scan"]
