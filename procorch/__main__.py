"""``python -m procorch`` is the ``procorch`` command."""

from procorch.cli.main import main

main()
