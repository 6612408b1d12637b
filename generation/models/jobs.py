"""Generation jobs and images (owned by the jobs/worker work; placeholder until it lands)."""
