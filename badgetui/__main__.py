"""`python -m badgetui` runs the same entry point as the console script."""

from badgetui.cli import main

raise SystemExit(main())
