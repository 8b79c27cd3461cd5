"""``vae-grade``: grade exercise notebooks from a shell (also ``python -m vae_from_scratch.grading``).

    vae-grade exercises/00_distributions.ipynb            # score table + grading-report.json
    vae-grade my.ipynb --seed 42 --json report.json      # reproducible run, report elsewhere
    vae-grade --all submissions/ --csv grades.csv        # every notebook under a folder, one CSV

Exit status: 0 when grading ran, whatever the score; 2 for usage errors (bad arguments, a missing
file or folder, a folder without notebooks); 3 when the notebook cannot be read as a notebook; 1 when
the grading process itself could not start.
"""

import argparse
import json
import sys
from pathlib import Path

from . import grader

EXIT_OK, EXIT_GRADER, EXIT_USAGE, EXIT_UNREADABLE = 0, 1, 2, 3


def _positive(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="vae-grade",
        description="Grade VAE-from-Scratch exercise notebooks: run each notebook in a separate process "
                    "with time limits (the file is never modified), grade every exercise, print a score "
                    "table and write a JSON report.",
        epilog="Exit status: 0 grading ran (whatever the score), 1 the grading process failed to start, "
               "2 usage error, 3 unreadable notebook.")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("notebook", nargs="?", help="the notebook (.ipynb) to grade")
    target.add_argument("--all", metavar="DIR", help="grade every .ipynb under DIR (recursively) into one CSV")
    parser.add_argument("--json", metavar="PATH", default="grading-report.json",
                        help="where to write the JSON report (default: %(default)s; '-' for none)")
    parser.add_argument("--csv", metavar="PATH", default="grading-report.csv",
                        help="with --all: where to write the CSV (default: %(default)s)")
    parser.add_argument("--seed", type=int, help="seed of the randomized tests (default: a fresh one, printed)")
    parser.add_argument("--timeout", type=_positive, metavar="S",
                        help=f"time limit per code cell and per exercise, seconds (default {grader.CELL_TIMEOUT:g})")
    parser.add_argument("--cell-timeout", type=_positive, metavar="S", help="time limit per code cell")
    parser.add_argument("--exercise-timeout", type=_positive, metavar="S",
                        help="time limit for the graded tests of one exercise")
    parser.add_argument("--total-timeout", type=_positive, metavar="S", default=grader.TOTAL_TIMEOUT,
                        help="wall-clock limit for one notebook, restarts included (default %(default)g)")
    parser.add_argument("--max-output", type=int, metavar="CHARS", default=grader.MAX_OUTPUT,
                        help="characters one cell or one exercise may print (default %(default)d)")
    parser.add_argument("--memory-mb", type=int, metavar="MB",
                        help="address-space limit of the grading process (default: none)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the table, no failing tests")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    options = {
        "seed": args.seed,
        "cell_timeout": args.cell_timeout or args.timeout or grader.CELL_TIMEOUT,
        "exercise_timeout": args.exercise_timeout or args.timeout or grader.EXERCISE_TIMEOUT,
        "total_timeout": args.total_timeout,
        "max_output": args.max_output,
        "memory_mb": args.memory_mb,
    }
    if args.max_output <= 0:
        parser.error("--max-output must be positive")
    if args.all is not None:
        folder = Path(args.all)
        if not folder.is_dir():
            print(f"vae-grade: error: {folder} is not a folder", file=sys.stderr)
            return EXIT_USAGE
        reports = grader.grade_folder(folder, **options)
        if not reports:
            print(f"vae-grade: error: no .ipynb files under {folder}", file=sys.stderr)
            return EXIT_USAGE
        for report in reports:
            print(grader.format_report(report, details=not args.quiet) if report["exercises"] or
                  not report.get("error") else f"{report['notebook']}\n  ERROR: {report['error']}")
            print()
        grader.write_csv(reports, args.csv)
        print(f"CSV written to {args.csv} ({len(reports)} submissions)")
        _write_json({"submissions": reports}, args.json)
        return EXIT_OK
    try:
        report = grader.grade_notebook(args.notebook, **options)
    except grader.NotebookError as error:
        print(f"vae-grade: error: {error}", file=sys.stderr)
        return EXIT_UNREADABLE if Path(args.notebook).exists() else EXIT_USAGE
    print(grader.format_report(report, details=not args.quiet))
    _write_json(report, args.json)
    return EXIT_GRADER if report["status"] == "error" else EXIT_OK


def _write_json(data, path):
    if path == "-":
        return
    Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"Report written to {path}")


if __name__ == "__main__":
    sys.exit(main())
