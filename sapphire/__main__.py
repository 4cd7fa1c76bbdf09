"""``python -m sapphire`` runs the same command as the ``sapphire`` script."""

from sapphire.cli import main

main()
