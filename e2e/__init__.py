"""End-to-end tests (a package, so this conftest is `e2e.conftest`, not a second `conftest`)."""
