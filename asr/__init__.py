"""asr: a recurrent CTC speech recogniser in PyTorch.

Data flows one way: audio -> features -> model -> loss or decoder -> text -> metrics.
From Python (see :mod:`asr.api`)::

    import asr
    model = asr.load_model("exp/demo/best.pt")
    print(model.transcribe("a.wav").text)
    print(asr.evaluate(model, "test.jsonl").rates.summary())
"""

__version__ = "0.1.0"

__all__ = ["DecodingOptions", "Model", "Transcript", "__version__", "evaluate", "load_model"]

# Where each public name lives. They are imported on first use (PEP 562), so ``import asr``
# and ``python -m asr.<tool>`` do not load torch and every module up front.
_HOMES = {"DecodingOptions": "asr.decoding", "Model": "asr.api", "Transcript": "asr.formats",
          "evaluate": "asr.api", "load_model": "asr.api"}


def __getattr__(name: str):
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'asr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
