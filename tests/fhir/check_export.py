"""Checks an export with independent implementations (issue 4, acceptance 3).

usage: check_export.py EXPORT_DIR
- bundle.json and emergency-summary.json must parse as FHIR R4 (4.0.1) Bundles with the
  `fhir.resources` 6.4 models (pydantic validation of every resource in them);
- summary.pdf must parse with pypdf; its text is printed so the caller can look for the
  allergies.
Prints one JSON object: {"fhir_version", "bundle": {type: count}, "ips": {...}, "pdf_text"}.
"""
import json
import sys
from collections import Counter

import fhir.resources
from fhir.resources.bundle import Bundle
from pypdf import PdfReader

out = sys.argv[1]
assert fhir.resources.__fhir_version__ == "4.0.1", fhir.resources.__fhir_version__
result = {"fhir_version": fhir.resources.__fhir_version__}
for name, key in (("bundle.json", "bundle"), ("emergency-summary.json", "ips")):
    b = Bundle.parse_file(f"{out}/{name}")
    result[key] = dict(Counter(e.resource.resource_type for e in (b.entry or [])))
reader = PdfReader(f"{out}/summary.pdf")
result["pdf_text"] = "\n".join(p.extract_text() for p in reader.pages)
print(json.dumps(result, ensure_ascii=False))
