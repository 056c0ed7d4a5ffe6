"""`python -m mlplatform.verify [repo_root] [--json]`: run every static cluster check; exit 1 on failure."""

from __future__ import annotations

import json
import sys

from . import run_all


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    report = run_all(args[0] if args else ".")
    print(json.dumps(report.to_dict(), indent=2) if "--json" in argv else report.format())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
