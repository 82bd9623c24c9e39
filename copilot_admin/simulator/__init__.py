"""The Azure-OpenAI-compatible simulator, for development, tests and benchmarks only.

Production code never imports it: the project's URLs mount it only when `COPILOT_SIMULATOR` is
on (never in production), and `manage.py run_simulator` serves it standalone."""
