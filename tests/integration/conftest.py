"""The integration tests share the isolated broker of the generation end-to-end test."""

from tests.integration.test_generation_e2e import isolated_broker  # noqa: F401 (a fixture)
