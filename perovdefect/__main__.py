"""`python -m perovdefect` == the `perovdefect` command."""

from perovdefect.cli.main import main

if __name__ == "__main__":
    main()
