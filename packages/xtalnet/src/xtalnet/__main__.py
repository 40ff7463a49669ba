"""``python -m xtalnet`` (also what ``torchrun -m xtalnet`` runs)."""

from xtalnet._cli import main

raise SystemExit(main())
