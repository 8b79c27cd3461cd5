"""Re-execute book notebooks in place so their stored outputs are current (the nbval contract).

    .venv/bin/python .ci/execute_notebooks.py              # every notebook in book/
    .venv/bin/python .ci/execute_notebooks.py book/02_elbo.ipynb
    .venv/bin/python .ci/execute_notebooks.py --jobs 2     # two notebooks at a time

With ``--jobs N`` N notebooks run at once, each kernel with the package's thread policy (one thread
fewer than the cores, at least one), so two kernels on a 2-core machine do not slow each other down.

Runs on the CPU (VAE_FROM_SCRATCH_DEVICE=cpu, CUDA hidden) with a fixed hash seed, from the
repository root as working directory, with the same kernel nbval uses. Prints each notebook's
execution time to the terminal (never into the notebook).
"""

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
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


def main(argv=None):
    parser = argparse.ArgumentParser(description="Re-execute book notebooks in place.")
    parser.add_argument("notebooks", nargs="*", help="default: every book/*.ipynb")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks executed at once")
    args = parser.parse_args(argv)
    os.environ.update(VAE_FROM_SCRATCH_DEVICE="cpu", CUDA_VISIBLE_DEVICES="", PYTHONHASHSEED="0",
                      MPLBACKEND="module://matplotlib_inline.backend_inline")
    shared = ROOT.parent / "shared" / "data"
    if shared.is_dir():
        os.environ.setdefault("VAE_FROM_SCRATCH_DATA", str(shared))
    paths = [Path(p).resolve() for p in args.notebooks] or sorted((ROOT / "book").glob("*.ipynb"))

    def run(path):
        seconds = execute(path)
        print(f"executed {path.relative_to(ROOT)} in {seconds:.1f} s", flush=True)

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for future in [pool.submit(run, path) for path in paths]:
            future.result()


if __name__ == "__main__":
    main()
