"""Run a fake upstream: ``python -m tests.fake_upstream --port 0 --name a``."""

from .server import main

raise SystemExit(main())
