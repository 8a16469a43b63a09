"""Convert a GGUF chat model (by default the bundled SmolLM2-135M-Instruct) into a Hugging Face folder for vLLM.

Runs in the vLLM virtualenv (transformers, gguf, accelerate). Writes nothing if the folder is already complete.
    .venv-vllm/bin/python scripts/convert_gguf_to_hf.py OUT_DIR [GGUF_FILE]
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    out = Path(sys.argv[1])
    if (out / "config.json").is_file() and any(out.glob("*.safetensors")):
        print(f"{out} is already converted")
        return
    if len(sys.argv) > 2:
        gguf = Path(sys.argv[2])
    else:
        from inference.model_files import bundled_model_path

        gguf = bundled_model_path()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # Dequantized by transformers on load; drop the GGUF quantization markers so vLLM reads plain weights.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(out)
    print(f"converted {gguf} -> {out}")


if __name__ == "__main__":
    main()
