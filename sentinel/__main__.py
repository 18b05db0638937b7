"""``python -m sentinel``: the same command as ``sentinel``, for when the console script
is not on PATH (inside the pre-commit framework's environment, say)."""

from sentinel.cli.main import main

if __name__ == "__main__":
    main()
