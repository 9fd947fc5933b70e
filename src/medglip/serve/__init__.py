"""The HTTP grounding service: ``create_app(grounder)`` (FastAPI), ``serve(checkpoint)`` and a web page.

>>> from medglip.serve import serve                                       # doctest: +SKIP
>>> serve("RUN", host="127.0.0.1", port=8000)                              # doctest: +SKIP

or ``python -m medglip.serve RUN --port 8000``; then open http://127.0.0.1:8000/ or POST
multipart/form-data to ``/v1/ground``, ``/v1/ground-volume``, ``/v1/vqa``, ``/v1/report``
(docs/grounded_api.md). One worker thread owns the Grounder and batches same-prompt requests.
"""

from .access import load_api_keys
from .app import create_app, serve
from .batcher import Batcher, ServerBusy
from .config import AccessConfig, ServerSettings, ServiceConfig

__all__ = [
    "AccessConfig",
    "Batcher",
    "ServerBusy",
    "ServerSettings",
    "ServiceConfig",
    "create_app",
    "load_api_keys",
    "serve",
]
