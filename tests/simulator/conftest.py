# The simulator under test is served the way the copilot tests serve it.
from tests.copilot.conftest import api_key, make_target, sim, simulator_url  # noqa: F401
