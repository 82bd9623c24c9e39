from django.apps import AppConfig


class SimulatorConfig(AppConfig):
    """Installed so that `manage.py run_simulator` exists; loading the app imports nothing of
    the simulator itself (that happens only when it is served)."""

    name = "copilot_admin.simulator"
    label = "simulator"
