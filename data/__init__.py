"""Data for hptransfer: prepare corpora into uint16 token bins, and draw reproducible batches.

    python -m data.prepare data=shakespeare_char    # or shakespeare, text, openwebtext

The API is imported lazily (PEP 562 module __getattr__): `import data` costs nothing, and
`python -m data.prepare` does not find data.prepare half-imported by this file (runpy warns
about that). torch is imported when a batch is drawn, tiktoken when a GPT-2 tokenizer is
built, `datasets` only to prepare openwebtext.
"""

import importlib

_API = {
    "TokenWindows": "loader",
    "ensure_prepared": "prepare",
    "prepare": "prepare",
    "load_meta": "prepare",
    "data_dir": "prepare",
    "get_tokenizer": "tokenizer",
}
__all__ = sorted(_API)


def __getattr__(name):
    if name in _API:
        return getattr(importlib.import_module(f"data.{_API[name]}"), name)
    raise AttributeError(f"module 'data' has no attribute {name!r}")


def __dir__():
    return __all__
