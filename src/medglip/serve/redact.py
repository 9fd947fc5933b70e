"""Secrets never reach a log: keys, tokens and passwords are redacted from every log record of the process.

:func:`install` wraps the process's log record factory (:func:`logging.setLogRecordFactory`), so that every
record of every logger (uvicorn's access log, which writes each request line with its query string;
uvicorn's error log; the service's own; httpx's; any library's) is redacted when it is created, before
any filter, handler or formatter sees it:

- query parameters (and ``name=value`` / ``"name": "value"`` pairs) whose name is, or ends with, key,
  token, secret, password, passwd, pwd, auth, authorization, signature, sig, session, credential
  (``api_key``, ``apikey``, ``access_token``, ``X-Api-Key``, ...): ``?api_key=[redacted]``;
- the values of headers that carry credentials (Authorization, Proxy-Authorization, X-API-Key,
  X-Auth-Token, Cookie, Set-Cookie), written as ``Name: value`` or as ``(b'name', b'value')`` pairs;
- ``Bearer`` / ``Basic`` tokens, ``user:pass@`` in URLs and ``sk-...`` keys (:func:`medglip.vqa.llm.redact`);
- every secret registered with :func:`register` (the service's API keys, the LLM key), wherever it appears.

A record's arguments are redacted one by one and keep their types where nothing was redacted (uvicorn's
access formatter reads them by position); a traceback is formatted and redacted up front.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any

from ..vqa.llm import redact as redact_credentials

MASK = "[redacted]"
#: a parameter or field name that holds a secret: the word itself, or a name ending with it
_NAME = (
    r"[\w.-]*?(?:keys?|tokens?|secrets?|passw(?:or)?ds?|pwd|auth|authori[sz]ation|signature|sig|"
    r"sessions?(?:[_-]?id)?|credentials?)"
)
_PAIR = re.compile(rf"(?i)((?:^|(?<=[?&;\s,(\[{{]))(?:{_NAME})=)(?!\[redacted\])[^&\s\"',;)\]}}#]*")
_QUOTED = re.compile(rf"(?i)([\"'](?:{_NAME})[\"']\s*:\s*[\"'])[^\"']*")
_HEADERS = r"(?:proxy-)?authorization|x-api-key|api-key|x-auth-token|cookie|set-cookie"
_HEADER_LINE = re.compile(rf"(?im)\b({_HEADERS})(\s*[:=]\s*)[^\r\n]*")
_HEADER_PAIR = re.compile(rf"(?i)(b?[\"'](?:{_HEADERS})[\"'],\s*b?[\"'])[^\"']*")

_SECRETS: set[str] = set()
_LOCK = threading.Lock()
_INSTALLED = False


def register(*secrets: str | None) -> None:
    """Redact these exact strings (API keys, an LLM key) from every log record from now on."""
    with _LOCK:
        _SECRETS.update(s for s in secrets if s and len(s) >= 4)


def redact(text: str) -> str:
    """``text`` with every kind of secret of the module docstring replaced by ``[redacted]``."""
    out = redact_credentials(text, tuple(_SECRETS))
    out = _HEADER_LINE.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", out)
    out = _HEADER_PAIR.sub(lambda m: f"{m.group(1)}{MASK}", out)
    out = _QUOTED.sub(lambda m: f"{m.group(1)}{MASK}", out)
    return _PAIR.sub(lambda m: f"{m.group(1)}{MASK}", out)


def _clean_arg(value: Any) -> Any:
    """An argument of a record, redacted; non-strings stay as they are unless their text held a secret."""
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, bytes):
        text = value.decode("latin-1")
        clean = redact(text)
        return value if clean == text else clean.encode("latin-1")
    try:
        text = str(value)
    except Exception:  # an object that cannot say what it is holds nothing we can redact
        return value
    clean = redact(text)
    return value if clean == text else clean


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Redact ``record`` in place (message, arguments, traceback); returns it.

    The arguments are redacted one by one first; when the message they make still holds a secret (a
    secret in the format string, or split between the two), the record becomes that message redacted,
    without arguments.
    """
    if isinstance(record.args, tuple):
        record.args = tuple(_clean_arg(a) for a in record.args)
    elif isinstance(record.args, dict):
        record.args = {k: _clean_arg(v) for k, v in record.args.items()}
    try:
        message = record.getMessage()
    except Exception:  # a record logging cannot format: logging reports it, with nothing of ours added
        message = None
    if message is not None:
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    return record


def install() -> None:
    """Redact every log record of the process from now on (idempotent; see the module docstring)."""
    global _INSTALLED
    with _LOCK:
        if _INSTALLED:
            return
        previous: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            return redact_record(previous(*args, **kwargs))

        logging.setLogRecordFactory(factory)
        _INSTALLED = True
