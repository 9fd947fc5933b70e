"""The documented defaults of `medglip serve` are its defaults: README, docs/security.md and docs/service.md
write them as ``--option`` [value] (or in a table row); the command's options, and the config classes they
fill, must agree (the README said --rate-burst [20], the AccessConfig 20 and --help 10)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from medglip.cli import app
from medglip.serve import AccessConfig, ServerSettings, ServiceConfig

ROOT = Path(__file__).resolve().parent.parent
DOCS = (ROOT / "README.md", ROOT / "docs" / "security.md", ROOT / "docs" / "service.md")
MiB = 2**20
#: "`--option` [value]" or "`--option N` [value]" in prose; "| `--option` | value |" in a table
DOCUMENTED = re.compile(r"`(--[a-z0-9-]+)(?: [A-Z]+)?`\s+\[([^\]]+)\]|\| `(--[a-z0-9-]+)` \| ([^|]+) \|")
#: option → (config class, field, factor from the option's unit to the field's)
FIELDS = {
    "--max-upload-mb": (ServiceConfig, "max_upload_bytes", MiB), "--max-batch": (ServiceConfig, "max_batch", 1),
    "--batch-wait-ms": (ServiceConfig, "batch_wait_ms", 1), "--max-queue": (ServiceConfig, "max_queue", 1),
    "--max-client-queue": (ServiceConfig, "max_client_queue", 1), "--max-slices": (ServiceConfig, "max_slices", 1),
    "--max-model-passes": (ServiceConfig, "max_model_passes", 1),
    "--max-request-mb": (ServiceConfig, "max_request_bytes", MiB),
    "--max-inflight-mb": (ServiceConfig, "max_inflight_bytes", MiB),
    "--request-timeout": (ServiceConfig, "request_timeout_s", 1), "--body-timeout": (ServiceConfig, "body_timeout_s", 1),
    "--io-workers": (ServiceConfig, "io_workers", 1), "--header-timeout": (ServerSettings, "header_timeout_s", 1),
    "--keep-alive": (ServerSettings, "timeout_keep_alive", 1),
    "--limit-concurrency": (ServerSettings, "limit_concurrency", 1),
    "--rate-limit": (AccessConfig, "rate_per_minute", 1), "--rate-burst": (AccessConfig, "rate_burst", 1),
}


def serve_defaults() -> dict[str, object]:
    command = typer.main.get_command(app).commands["serve"]
    return {opt: p.default for p in command.params for opt in p.opts if opt.startswith("--")}


def _number(text: str) -> float:
    """The number a documented default stands for: ``512 MiB`` → 512, ``120 s`` → 120, ``off`` → 0."""
    if text.strip() == "off":
        return 0.0
    m = re.match(r"\s*([0-9][0-9_,]*(?:\.[0-9]+)?)", text)
    assert m, f"cannot read a default from [{text}]"
    return float(m.group(1).replace(",", "").replace("_", ""))


def test_every_documented_default_is_the_commands():
    defaults = serve_defaults()
    seen = []
    for doc in DOCS:
        for m in DOCUMENTED.finditer(doc.read_text(encoding="utf-8")):
            option, value = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
            assert option in defaults, f"{doc.name} documents {option}, which medglip serve does not have"
            assert _number(value) == float(defaults[option] or 0), \
                f"{doc.name} says {option} [{value}]; medglip serve --help says {defaults[option]}"
            seen.append(option)
    assert {"--rate-burst", "--max-slices", "--max-model-passes", "--max-client-queue"} <= set(seen)


@pytest.mark.parametrize("option", sorted(FIELDS))
def test_the_commands_defaults_are_the_config_classes(option):
    klass, field, factor = FIELDS[option]
    assert float(serve_defaults()[option]) * factor == float(getattr(klass(), field)), (option, klass.__name__, field)
