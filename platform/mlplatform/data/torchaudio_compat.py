"""Import torchaudio (and encodec, which imports it) on machines where its C++ extension cannot load.

torchaudio 2.11's PyPI wheel is a CUDA build: next to torch 2.13 CPU, loading ``_torchaudio.abi3.so``
fails (``libc10_cuda.so`` missing; docs/stack.md, "torchaudio / encodec"), so ``import torchaudio`` and ``import encodec``
raise. The pure-Python parts we use (``functional.resample``, ``transforms``) need no extension. This
module tries the normal import first and steps aside where it works (GPU machines with a matching
torch); only when the extension fails to load does it register a stand-in ``torchaudio._extension``
that reports "no extension", then imports torchaudio again. One place, logged once.
"""
from __future__ import annotations

import importlib
import logging
import sys
import types

_LOG = logging.getLogger(__name__)
STANDIN_USED = False


def _purge() -> None:
    for name in [m for m in sys.modules if m == "torchaudio" or m.startswith("torchaudio.")]:
        del sys.modules[name]


def import_torchaudio() -> types.ModuleType:
    """Return the torchaudio module, with the extension stand-in only if the real one cannot load."""
    global STANDIN_USED
    if "torchaudio" in sys.modules and not isinstance(sys.modules.get("torchaudio"), type(None)):
        mod = sys.modules["torchaudio"]
        if hasattr(mod, "functional"):
            return mod
    try:
        return importlib.import_module("torchaudio")
    except OSError as e:  # the C++ extension failed to load
        _purge()
        stub = types.ModuleType("torchaudio._extension")
        stub._IS_TORCHAUDIO_EXT_AVAILABLE = False  # type: ignore[attr-defined]
        stub._IS_ALIGN_AVAILABLE = False  # type: ignore[attr-defined]

        def _unavailable(*_a, **_k):
            raise RuntimeError("torchaudio's C++ extension is not available on this machine")

        stub.fail_if_no_align = lambda f: _unavailable  # type: ignore[attr-defined]
        stub._check_cuda_version = lambda: None  # type: ignore[attr-defined]
        sys.modules["torchaudio._extension"] = stub
        mod = importlib.import_module("torchaudio")
        STANDIN_USED = True
        _LOG.warning("torchaudio C++ extension unavailable (%s); using its pure-Python parts only",
                     str(e).splitlines()[0][:120])
        return mod


def import_encodec() -> types.ModuleType:
    """``import encodec`` after making sure torchaudio imports (encodec/utils.py imports it)."""
    import_torchaudio()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # weight_norm deprecation, 15 per model build
        return importlib.import_module("encodec")


def resample(wav, orig_sr: int, new_sr: int):
    """Band-limited resampling (torchaudio.functional.resample). Shape: [..., T] -> [..., T']."""
    if orig_sr == new_sr:
        return wav
    return import_torchaudio().functional.resample(wav, orig_sr, new_sr)
