"""`python manage.py run_simulator`: serve the Azure OpenAI simulator in the foreground.

For development and load tests: point deployments' endpoints at http://HOST:PORT. It binds the
loopback address by default. The control endpoints (`/_sim/requests`, `/_sim/behaviour`) need the
`X-Simulator-Token` header holding `COPILOT_SIMULATOR_TOKEN` from the environment; without that
variable they are not served. Never expose it beyond this machine.
"""

from django.conf import settings
from django.core.management.base import BaseCommand

from copilot_admin.simulator.server import SimulatorApp, SimulatorState, uvicorn_config


class Command(BaseCommand):
    help = "Serve the local Azure OpenAI-compatible simulator (chat completions, error modes, request log)."
    requires_system_checks = []  # needs neither the database nor the project's checks

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument(
            "--max-recorded", type=int, default=1000, help="How many requests the log keeps (latest first out)."
        )
        parser.add_argument(
            "--deployment",
            action="append",
            dest="deployments",
            help="Accept only this deployment name (repeatable); default: any name.",
        )
        parser.add_argument("--log-level", default="warning")

    def handle(self, *args, host: str, port: int, max_recorded: int, deployments, log_level: str, **options):
        import uvicorn

        token = settings.COPILOT_SIMULATOR_TOKEN
        state = SimulatorState(max_recorded=max_recorded, deployments=deployments, control_token=token or None)
        control = (
            "control: /_sim/behaviour, /_sim/requests with X-Simulator-Token" if token
            else "control endpoints off: set COPILOT_SIMULATOR_TOKEN"
        )
        self.stdout.write(f"Azure OpenAI simulator on http://{host}:{port} ({control})")
        server = uvicorn.Server(uvicorn_config(SimulatorApp(state), host=host, port=port, log_level=log_level))
        server.run()
