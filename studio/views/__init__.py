"""Studio pages, one module per area: sign-in and organization, generation and jobs, review,
gallery, models."""
