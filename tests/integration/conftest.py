"""The integration tests share the isolated broker and the webhook receiver of the generation
end-to-end test."""

from tests.integration.test_generation_e2e import isolated_broker, receiver  # noqa: F401 (fixtures)
