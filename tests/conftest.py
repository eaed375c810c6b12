"""Shared test data: the reference figures (from the official code, timm and lucid's docs)."""

from __future__ import annotations

import os
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER"):  # one of `pytest -n N`'s processes: N of them share the cores
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # torch here and in the processes tests start

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"

# Parameter counts at 224 px, 1000 classes: official code (= timm for v2).
OFFICIAL_PARAMS = {
    "pvt_tiny": 13_229_288,
    "pvt_small": 24_485_864,
    "pvt_medium": 44_208_104,
    "pvt_large": 61_369_320,
    "pvt_huge": 304_945_512,
    "pvt_v2_b0": 3_666_760,
    "pvt_v2_b1": 14_009_000,
    "pvt_v2_b2": 25_362_856,
    "pvt_v2_b2_li": 22_553_512,
    "pvt_v2_b3": 45_238_696,
    "pvt_v2_b4": 62_556_072,
    "pvt_v2_b5": 81_956_008,
}

# SegFormer's MiT encoders (conf/model/mit_b*.yaml): Hugging Face's SegformerModel for the same
# configs (transformers 5.24, counted on the meta device); no head.
MIT_PARAMS = {
    "mit_b0": 3_319_392,
    "mit_b1": 13_151_424,
    "mit_b2": 24_196_288,
    "mit_b3": 44_072_128,
    "mit_b4": 60_842_688,
    "mit_b5": 81_443_008,
}

# Whole segmentation architectures, 150 classes (ADE20K). SegFormer: Hugging Face's
# SegformerForSemanticSegmentation (transformers 5.25, counted on the meta device).
SEGFORMER_PARAMS = {
    "segformer_b0": 3_752_694,
    "segformer_b1": 13_715_798,
    "segformer_b2": 27_461_974,
    "segformer_b3": 47_337_814,
    "segformer_b4": 64_108_374,
    "segformer_b5": 84_708_694,
}
# Semantic FPN: the official detection/segmentation backbone (every stage, v1 position tables at
# 224 px) + mmsegmentation 1.2.2's FPN (256 channels, 4 outputs: 2,623,488 parameters on
# 64-128-320-512 maps, 2,492,416 on b0's 32-64-160-256) + FPNHead (128 channels: 1,643,158),
# counted on mmseg's own modules (fixtures/README.md). The PVT papers round them to 7.6 ... 85.7 M.
FPN_PARAMS = {
    "fpn_pvt_v2_b0": 7_545_334,
    "fpn_pvt_v2_b1": 17_762_646,
    "fpn_pvt_v2_b2": 29_116_502,
    "fpn_pvt_v2_b3": 48_992_342,
    "fpn_pvt_v2_b4": 66_309_718,
    "fpn_pvt_v2_b5": 85_709_654,
    "fpn_pvt_tiny": 16_980_886,
    "fpn_pvt_small": 28_237_462,
    "fpn_pvt_medium": 47_959_702,
    "fpn_pvt_large": 65_120_918,
}
MMSEG_FPN_NECK = {(32, 64, 160, 256): 2_492_416, (64, 128, 320, 512): 2_623_488}
# Detectors (issue 32): RetinaNet and Mask R-CNN on every PVT v2 encoder (b2_li included) and v1 tiny..large;
# their counts are test_detection_models.py's.
DETECTION_VARIANTS = sorted(
    f"{kind}_{encoder}"
    for kind in ("retinanet", "mask_rcnn")
    for encoder in ("pvt_v2_b0", "pvt_v2_b1", "pvt_v2_b2", "pvt_v2_b2_li", "pvt_v2_b3", "pvt_v2_b4", "pvt_v2_b5",
                    "pvt_tiny", "pvt_small", "pvt_medium", "pvt_large")
)
MMSEG_FPN_HEAD = 1_643_158

# lucid 2.x's documented counts, and the overrides that reproduce them.
LUCID_PARAMS = {
    "pvt_tiny": ({"attn_proj": False}, 12_457_192),
    "pvt_small": ({"attn_proj": False}, 23_003_048),
    "pvt_medium": ({"attn_proj": False}, 41_492_648),
    "pvt_large": ({"attn_proj": False, "depths": [3, 4, 27, 3]}, 55_359_848),
    "pvt_huge": ({"attn_proj": False}, 286_706_920),
    "pvt_v2_b5": ({"mlp_ratios": [8, 8, 4, 4]}, 82_882_984),
}


def num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="session")
def fixture_file():
    cache = {}

    def load(name: str) -> dict:
        if name not in cache:
            cache[name] = torch.load(FIXTURES / name, weights_only=True)
        return cache[name]

    return load


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    """``lucid-arch ARGV`` in-process: (exit status, stdout, stderr)."""
    from lucid_arch.cli import app

    try:
        app.main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def run_in_terminal(argv: list[str], cwd, stream: str) -> tuple[int, str, str]:
    """Run a command with ``stream`` ("stdout" or "stderr") on a pseudo-terminal: (status, terminal text, other stream)."""
    import os
    import pty
    import subprocess

    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM", "HYDRA_FULL_ERROR")}
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, stream: follower}
    proc = subprocess.Popen(argv, cwd=cwd, env={**env, "TERM": "xterm-256color", "COLUMNS": "160"}, text=True, **pipes)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    other = (proc.stderr if stream == "stdout" else proc.stdout).read()
    status = proc.wait(timeout=120)
    os.close(leader)
    return status, b"".join(chunks).decode(), other


# --- SLURM ------------------------------------------------------------------------------------

REQUIRE_SLURM = os.environ.get("LUCID_ARCH_REQUIRE_SLURM") == "1"  # set by .ci/run, which starts a cluster


@pytest.fixture(scope="session")
def slurm_partition() -> str:
    """The default partition of a SLURM cluster that answers, with 2 nodes up; skip (fail in CI) without one.

    .ci/slurm-cluster.sh up starts one on this machine. The SLURM tests give their jobs unique
    names (slurm_job_name) and cancel what they leave, so they can share a cluster.
    """
    import shutil
    import subprocess

    why = None
    if not all(shutil.which(cmd) for cmd in ("sbatch", "sinfo", "scontrol", "scancel")):
        why = "SLURM's commands are not installed (.ci/slurm-cluster.sh up installs and starts a local cluster)"
    else:
        proc = subprocess.run(["sinfo", "-h", "-o", "%P %D %t"], capture_output=True, text=True, timeout=30)
        rows = [line.split() for line in proc.stdout.splitlines() if line.strip()]
        default = [r for r in rows if r[0].endswith("*")]
        up = sum(int(r[1]) for r in default if r[2] in ("idle", "mix", "alloc"))
        if proc.returncode or not default or up < 2:
            why = f"no SLURM cluster with 2 nodes up answers (sinfo: {proc.stdout.strip() or proc.stderr.strip()}); .ci/slurm-cluster.sh up starts one"
    if why:
        if REQUIRE_SLURM:
            pytest.fail(f"LUCID_ARCH_REQUIRE_SLURM=1 but {why}")
        pytest.skip(why)
    return default[0][0].rstrip("*")


@pytest.fixture
def slurm_job_name(slurm_partition):
    """A job name of this test's own; whatever is left under it is cancelled at the end."""
    import subprocess
    import uuid

    name = f"lucid-test-{uuid.uuid4().hex[:10]}"
    yield name
    subprocess.run(["scancel", "--name", name], capture_output=True, timeout=30)


# --- PostgreSQL -------------------------------------------------------------------------------

POSTGRES_ENV = "LUCID_ARCH_TEST_POSTGRES_URL"  # .ci/run exports it after .ci/postgres.sh up


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The URL of a PostgreSQL database the tests may write studies to; skip without one (fail in CI).

    ``.ci/postgres.sh up`` starts one on this machine and ``.ci/postgres.sh url`` prints its URL.
    A URL that is set must work: a server that does not answer fails the test, it never skips.
    """
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        why = f"{POSTGRES_ENV} is unset (.ci/postgres.sh up starts a server; export {POSTGRES_ENV}=\"$(.ci/postgres.sh url)\")"
        if REQUIRE_SLURM:  # CI starts the server with the cluster: there a skip would hide a missing service
            pytest.fail(f"LUCID_ARCH_REQUIRE_SLURM=1 but {why}")
        pytest.skip(why)
    import optuna

    try:
        optuna.storages.RDBStorage(url).get_all_studies()
    except Exception as error:  # noqa: BLE001 - said whole: the URL was given, so it must work
        pytest.fail(f"{POSTGRES_ENV}={url}: the server does not answer: {type(error).__name__}: {error}")
    return url


# The files that take longest (sum of their tests, measured on 2 cores), longest first. pytest-xdist's
# --dist loadfile hands out files in collection order (addopts: --no-loadscope-reorder), so these start
# first and the short files fill in around them; alphabetical order could leave one worker finishing a
# long file alone. A file missing from the list only runs later; the order never changes a result.
LONGEST_FIRST = ("test_export", "test_cli", "test_training", "test_search", "test_slurm", "test_docs_commands",
                 "test_hostile", "test_search_storage", "test_detection_models", "test_detection_use",
                 "test_segmentation_training", "test_stopping", "test_export_run", "test_sweeps", "test_packaging",
                 "test_detection_training", "test_run_to_use", "test_diff", "test_docs", "test_pretrained")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable: each file's own order is kept
