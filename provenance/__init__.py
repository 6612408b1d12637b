"""Provenance of generated images: C2PA content credentials, IPTC/XMP metadata and an optional
invisible watermark, signed with the platform's or an organization's certificate; their
verification. The Django-free signing and watermark code is under ``engine/``."""
