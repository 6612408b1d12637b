"""The XMP packet of an Easel image, for tools that read IPTC/XMP but not C2PA: IPTC's digital
source type (``trainedAlgorithmicMedia``), the credit line, the creator tool, and the image id
with a link back to it. PNGs carry it in an ``iTXt`` chunk keyed ``XML:com.adobe.xmp``; WebP in
its ``XMP`` chunk.

``xmp_fields`` reads those fields back with patterns instead of an XML parser: an upload's XMP is
untrusted, and a parser that expands entities is a denial-of-service on the web process.
"""

from __future__ import annotations

import html
import re
from xml.sax.saxutils import escape, quoteattr

from .manifest import GENERATOR, TRAINED_ALGORITHMIC_MEDIA, ImageFacts

PNG_KEY = "XML:com.adobe.xmp"
_NAMESPACES = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "xmpMM": "http://ns.adobe.com/xap/1.0/mm/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "plus": "http://ns.useplus.org/ldf/xmp/1.0/",
}
# What xmp_fields reports, by the property that holds it.
FIELDS = {
    "digital_source_type": "Iptc4xmpExt:DigitalSourceType",
    "credit": "photoshop:Credit",
    "creator_tool": "xmp:CreatorTool",
    "image_id": "plus:ImageSupplierImageID",
    "image_url": "dc:identifier",
}
_MAX_SCANNED = 256 * 1024  # an XMP packet is a few KB; never scan a huge one


def xmp_packet(facts: ImageFacts) -> str:
    attributes = {
        "Iptc4xmpExt:DigitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
        "photoshop:Credit": facts.credit,
        "xmp:CreatorTool": f"{GENERATOR} {facts.generator_version}",
        "xmp:CreateDate": facts.created_at.isoformat(),
        "xmpMM:DocumentID": f"urn:uuid:{facts.image_id}",
        "plus:ImageSupplierImageID": facts.image_id,
        "dc:identifier": facts.image_url,
    }
    namespaces = "".join(
        f"\n    xmlns:{prefix}={quoteattr(uri)}" for prefix, uri in _NAMESPACES.items()
    )
    properties = "".join(f"\n    {name}={quoteattr(value)}" for name, value in attributes.items())
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        f'<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk={quoteattr(GENERATOR)}>\n'
        f' <rdf:RDF xmlns:rdf="{escape(_NAMESPACES["rdf"])}">\n'
        f'  <rdf:Description rdf:about=""{namespaces}{properties}/>\n'
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="r"?>'
    )


def xmp_fields(packet: str | bytes | None) -> dict[str, str]:
    """The ``FIELDS`` an XMP packet holds, as attributes (``name="…"`` or ``name='…'``) or
    simple elements (``<name>…</name>``); missing ones are left out."""
    if not packet:
        return {}
    text = packet.decode("utf-8", "replace") if isinstance(packet, bytes) else packet
    text = text[:_MAX_SCANNED]
    found: dict[str, str] = {}
    for field, name in FIELDS.items():
        prop = re.escape(name)
        match = re.search(rf"""{prop}\s*=\s*(?:"([^"]*)"|'([^']*)')""", text) or re.search(
            rf"<{prop}>\s*([^<]*?)\s*</{prop}>", text
        )
        if match:
            found[field] = html.unescape(next(g for g in match.groups() if g is not None))
    return found
