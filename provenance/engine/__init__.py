"""Django-free provenance: certificate chains, C2PA manifests and their signing and reading, the
XMP packet, and the invisible watermark. Plain bytes, dataclasses and PIL images in and out; the
Django side (``provenance.credentials``, ``generation.provenance``) decides what to sign with."""
