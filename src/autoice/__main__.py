"""``python -m autoice`` runs the CLI (so ``torchrun -m autoice train ...`` works)."""

from autoice.cli.main import main

if __name__ == "__main__":
    main()
