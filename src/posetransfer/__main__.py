"""``python -m posetransfer``: the same as the ``posetransfer`` console script."""

from posetransfer.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
