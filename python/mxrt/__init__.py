"""mxrt: compressed inference of encoder and MLP models from .mxrt files.

    import mxrt
    model = mxrt.Model("minilm-sst2.mxrt")           # backend="cpu" | "wgpu" | "cuda", threads=None
    labels, probabilities = model.classify(["a great film", "boring plot"])
    vectors = encoder.embed(["a sentence"])           # numpy float32, (n, dimensions)
    outputs = jsc.run(features)                       # numpy in, numpy out
    report = mxrt.convert("checkpoint-dir", "model.mxrt", weights="mxint8")

Calls release the GIL while they compute; a Model may be shared by threads. Failures raise MxrtError
(InputError for inputs that do not fit the model, ConvertError for conversions) with the message.
"""
import json as _json
import os as _os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from . import _mxrt
from ._mxrt import ConvertError, InputError, MxrtError, __version__

PathLike = Union[str, "_os.PathLike[str]"]

__all__ = ["Model", "convert", "inspect", "verify", "MxrtError", "InputError", "ConvertError", "__version__"]


class Model:
    """An opened .mxrt model (mapped, validated once; weights read in place on the CPU)."""

    def __init__(self, path: PathLike, backend: str = "cpu", threads: Optional[int] = None,
                 max_batch: int = 32, max_length: Optional[int] = None, verify_checksums: bool = True):
        self._m = _mxrt.Model(_os.fspath(path), backend, threads, max_batch, max_length, verify_checksums)
        self.info: Dict[str, Any] = _json.loads(self._m.info_json())
        """Architecture, task, labels, widths, encodings, memory, backend and format version."""

    @property
    def labels(self) -> List[str]:
        return self._m.labels

    def classify(self, texts: Sequence[str]):
        """Labels and probabilities (numpy float32, n x labels) of each text; a regression head gives its
        scores (n x 1)."""
        return self._m.classify(_texts(texts))

    def classify_pairs(self, pairs: Sequence[Tuple[str, str]]):
        """As classify, for sentence pairs (cross-encoders: MRPC, QNLI, STS-B, ...)."""
        return self._m.classify_pairs([(a, b) for a, b in pairs])

    def logits(self, texts: Sequence[str], pairs: Optional[Sequence[str]] = None):
        """The head's raw outputs (numpy float32, n x width) for texts, or for (texts[i], pairs[i])."""
        return self._m.logits(_texts(texts), None if pairs is None else _texts(pairs))

    def embed(self, texts: Sequence[str]):
        """Sentence embeddings (numpy float32, n x dimensions) of a sentence-encoder model."""
        return self._m.embed(_texts(texts))

    def run(self, x):
        """An MLP on feature rows: any 2-D array-like of numbers (rows x features) -> numpy float32."""
        return self._m.run(x)

    def __repr__(self) -> str:
        i = self.info
        return f"mxrt.Model({i['architecture']}, {i['task']}, {i['backend']})"


def _texts(texts) -> List[str]:
    if isinstance(texts, str):
        raise TypeError("give a list of texts, not one string (wrap it: [text])")
    return list(texts)


def convert(checkpoint: Union[PathLike, Sequence[PathLike]], out: PathLike, *, recipe: Optional[PathLike] = None,
            weights: Optional[str] = None, activations: Optional[str] = None, rounding: Optional[str] = None,
            prune: Optional[str] = None, sparsity: Optional[float] = None, scope: str = "local", seed: int = 0,
            tokenizer: bool = True) -> Dict[str, Any]:
    """Converts a checkpoint (a directory, or [config.json, weights file]) into `out`, written atomically;
    returns the fidelity report (per tensor: encoding, bytes, RMSE, max error, SQNR; totals). The same
    options as `mxrt convert`: a recipe file and/or weights/activations/rounding for every layer, pruning."""
    inputs = [checkpoint] if isinstance(checkpoint, (str, _os.PathLike)) else list(checkpoint)
    report = _mxrt.convert([_os.fspath(p) for p in inputs], _os.fspath(out),
                           None if recipe is None else _os.fspath(recipe), weights, activations, rounding,
                           prune, sparsity, scope, seed, tokenizer)
    return _json.loads(report)


def inspect(path: PathLike) -> Dict[str, Any]:
    """The file's tensors (encoding, bytes, bits per element, sparsity), totals against FP32, version and
    metadata (structure validated; checksums are verify's job)."""
    return _json.loads(_mxrt.inspect(_os.fspath(path)))


def verify(path: PathLike) -> Dict[str, Any]:
    """Structure, every checksum and, for a model, the checks at open. {"ok": True, ...} or
    {"ok": False, "error": ...}: a bad file is an answer, not an exception."""
    return _json.loads(_mxrt.verify(_os.fspath(path)))
