"""Refuse to build the book from notebooks whose stored outputs are incomplete.

The book renders the outputs stored in book/*.ipynb (nbval proves they are what execution gives).
This fails (exit 1) when a chapter has a code cell that was never executed, execution counts out of
order (a partial or manual re-run), or a stored error: an execution error fails the build.
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def problems(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    counts = [c.get("execution_count") for c in code]
    if None in counts:
        yield f"{counts.count(None)} code cells never executed"
    elif counts != list(range(1, len(counts) + 1)):
        yield "execution counts are not 1..n in order (partial or manual re-run)"
    for i, cell in enumerate(code):
        for out in cell.get("outputs", []):
            if out["output_type"] == "error":
                yield f"code cell {i + 1} stored an error: {out.get('ename')}: {out.get('evalue')}"


def main():
    bad = [(p, m) for p in sorted((ROOT / "book").glob("*.ipynb")) for m in problems(p)]
    for path, message in bad:
        print(f"{path.relative_to(ROOT)}: {message}", file=sys.stderr)
    if bad:
        print("re-execute with: .venv/bin/python .ci/execute_notebooks.py", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
