"""Tests of the generation app: protocol, templates, providers, jobs."""
