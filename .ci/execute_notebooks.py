"""Re-execute book notebooks in place so their stored outputs are current (the nbval contract).

    .venv/bin/python .ci/execute_notebooks.py              # every notebook in book/
    .venv/bin/python .ci/execute_notebooks.py book/02_elbo.ipynb

Runs on the CPU (VAE_FROM_SCRATCH_DEVICE=cpu, CUDA hidden) with a fixed hash seed, from the
repository root as working directory, with the same kernel nbval uses. Prints each notebook's
execution time to the terminal (never into the notebook).
"""

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_PER_CELL = 600


def execute(path):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=TIMEOUT_PER_CELL, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    nbformat.write(nb, path)
    return time.perf_counter() - start


def main(argv):
    os.environ.update(VAE_FROM_SCRATCH_DEVICE="cpu", CUDA_VISIBLE_DEVICES="", PYTHONHASHSEED="0",
                      MPLBACKEND="module://matplotlib_inline.backend_inline")
    shared = ROOT.parent / "shared" / "data"
    if shared.is_dir():
        os.environ.setdefault("VAE_FROM_SCRATCH_DATA", str(shared))
    paths = [Path(p).resolve() for p in argv] or sorted((ROOT / "book").glob("*.ipynb"))
    for path in paths:
        print(f"executing {path.relative_to(ROOT)} ...", flush=True)
        seconds = execute(path)
        print(f"  {seconds:.1f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
