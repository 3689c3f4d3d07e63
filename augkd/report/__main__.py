"""Entry point of ``python -m augkd.report``; see :mod:`augkd.report.cli`."""

from augkd.report.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
