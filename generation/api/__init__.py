"""REST endpoints for generations and their images."""
