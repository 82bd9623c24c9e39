"""The copilot's simulator fixtures, for integration key calls that go all the way."""

from tests.copilot.conftest import sim, simulator_url  # noqa: F401
from tests.regions.fixtures import deployment_factory  # noqa: F401
