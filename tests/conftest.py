import contextlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

# The suite runs many small torch processes beside each other (servers, CLI runs, DataLoader
# workers, pytest itself): their idle OpenMP threads sleep at once rather than spin against each
# other. And artnet's own choice of threads, which looks at how busy the machine is, stays out of
# the runs the suite makes (a CLI command run in pytest's process would otherwise change the
# threads of the tests after it, and print a line a test compares, as the machine's load has it):
# PyTorch's defaults stand. Set before torch loads, inherited by every process a test starts; the
# tests of the choice itself (tests/engine/test_threads.py) give it explicit environments and loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("ARTNET_THREADS", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ARTNET_SHARED", ROOT.parent / "shared"))
REFERENCE = SHARED / "reference" / "artnet"
MEDIA = SHARED / "media"


def default_ctrl_c() -> None:
    """preexec_fn of a process a test interrupts with SIGINT: Ctrl-C as a terminal has it. A suite
    started in the background by a script (``cmd &``) or by nohup runs with SIGINT ignored, and a
    child would inherit that."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def benchmark_script(name: str):
    """``benchmarks/<name>.py`` imported as a module (benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def require(path: Path) -> Path:
    """Skip (with the reason) when a shared reference file is not beside the project."""
    if not path.exists():
        pytest.skip(f"{path} is not available (../shared is expected beside the project)")
    return path


# The caches the suite writes, each in a folder of its own, for child processes too: artnet's (the
# acceleration choice, ...) and TorchInductor's compiled kernels, whose key leaves out the ISA ATen
# dispatches to, so that a session under ATEN_CPU_CAPABILITY=avx2 would load another session's AVX-512 code.
PRIVATE_CACHES = ("ARTNET_CACHE", "TORCHINDUCTOR_CACHE_DIR")


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    previous = {name: os.environ.get(name) for name in PRIVATE_CACHES}
    for name in PRIVATE_CACHES:
        os.environ[name] = str(tmp_path_factory.mktemp(name.lower()))
    yield
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            if int(fields[1]) == pid:
                children.append(int(entry.name))
    return children


def is_running(pid: int) -> bool:
    """Alive and not a zombie (a killed process nobody has reaped yet is dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def wait_until(condition, timeout: float, interval: float = 0.02) -> bool:
    """Poll ``condition()`` until it holds or ``timeout`` seconds pass; whether it held."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def tsn_folder(folder: Path, num_frames: int, size: tuple[int, int], seed: int = 0) -> Path:
    """A frame folder in TSN's layout: RGB frames ``img_*.jpg`` and optical flow ``flow_x_*`` / ``flow_y_*``
    side by side (one flow frame fewer), each random, so that what a reader read tells which it was."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for k in range(1, num_frames + 1):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"img_{k:05d}.jpg")
        if k < num_frames:
            for axis in "xy":
                Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(folder / f"flow_{axis}_{k:05d}.jpg")
    return folder


def calibrated_model(name: str, clip, num_classes: int, **options) -> torch.nn.Module:
    """A model (eval mode) whose BN statistics are those of its input, as a trained model's are: with a
    fresh network's unit statistics the relation branches' squares overflow on real-scale clips."""
    from artnet import create_model
    from artnet.engine.auto_acceleration import probe_clips

    model = create_model(name, num_classes=num_classes, in_channels=clip.channels, **options)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    for norm in norms:
        norm.momentum = None  # a cumulative average: one pass sets the statistics
    model.train()
    with torch.no_grad():
        model(probe_clips(clip, batch=4, seed=1))
    for norm in norms:
        norm.momentum = 0.1
    return model.eval()


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    """A tiny built-in dataset: 12 classes x 3 clips of 20 frames, 52 x 40."""
    from artnet.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("synthetic"), seed=0, clips_per_class=3, num_frames=20, height=40, width=52, workers=1)


@pytest.fixture(scope="session")
def reference_run(synthetic, tmp_path_factory):
    """An uninterrupted deterministic run of the tiny recipe, through the CLI (engine, interop and serve tests share it)."""
    from .engine.conftest import TINY_CONFIG, cli, tiny_overrides

    run_dir = tmp_path_factory.mktemp("reference")
    cli("train", TINY_CONFIG, *tiny_overrides(synthetic, run_dir))
    return run_dir


@dataclass(frozen=True)
class TrainedRun:
    run_dir: Path
    dataset: "SyntheticDataset"  # noqa: F821 (artnet.data.synthetic, imported when the fixture runs)


# A small ARTNet trained until it names the built-in dataset's classes (most of its test clips, 1clip;
# how many varies with the seed and the CPU's float order): what the tests of the maps, the web page
# and the load take. The demo's frames and crops, 8-frame clips, one block per stage, 600 iterations.
TRAINED_DATASET = dict(seed=0, clips_per_class=16, num_frames=20, height=64, width=86)
TRAINED_RECIPE = [
    "data.clip.frame_size=[64,86]",
    "data.clip.crop_size=56",
    "model.dropout=0",
    "solver.max_iter=600",
    "solver.lr_steps=[450]",
    "solver.base_lr=0.1",
    "solver.warmup_iters=30",
    "solver.batch_size=16",
    "train.checkpoint_interval=600",
    "train.log_interval=100",
]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> TrainedRun:
    from artnet.data.synthetic import generate

    from .engine.conftest import TINY_CONFIG, cli, tiny_overrides

    dataset = generate(tmp_path_factory.mktemp("trained_data"), workers=1, **TRAINED_DATASET)
    run_dir = tmp_path_factory.mktemp("trained_run")
    cli("train", TINY_CONFIG, *tiny_overrides(dataset, run_dir, *TRAINED_RECIPE), timeout=900)
    return TrainedRun(run_dir, dataset)
