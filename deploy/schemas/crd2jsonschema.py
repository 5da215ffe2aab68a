"""Turn CRD schemas (openAPIV3Schema) into strict JSON Schemas for offline checks.

    python deploy/schemas/crd2jsonschema.py            # regenerate every *.json here
    python deploy/schemas/crd2jsonschema.py --check    # exit 1 if one is stale
    python deploy/schemas/crd2jsonschema.py --crd FILE # print the JSON Schema(s) of a
                                                       # whole upstream CRD file

Input: the files in src/, each an excerpt of an upstream CRD (see README.md) or
a whole upstream CustomResourceDefinition file. Output: one `<kind>-<group prefix>-<version>.json` per
kind, named like kubernetes-validate's schemas.

Strict, as `openapi2jsonschema --strict`: an object that lists its properties
rejects any other (a typo in a manifest fails here, where the API server would
prune it silently). `x-kubernetes-int-or-string` becomes integer-or-string,
`nullable` adds null. A subtree marked `x-sendmesh-open: true` was not
transcribed: it is checked for its type only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "src"

# Documentation and server-side hints that JSON Schema does not check.
DROPPED = {
    "description",
    "format",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
    "x-kubernetes-embedded-resource",
}


def convert(node: dict[str, Any]) -> dict[str, Any]:
    """One openAPIV3Schema node as a strict JSON Schema node."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in DROPPED or key.startswith("x-"):
            continue
        if key == "properties":
            out[key] = {name: convert(sub) for name, sub in value.items()}
        elif key in ("items", "not"):
            out[key] = convert(value)
        elif key == "additionalProperties":
            out[key] = convert(value) if isinstance(value, dict) else value
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [convert(sub) for sub in value]
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    open_ended = node.get("x-kubernetes-preserve-unknown-fields") or node.get("x-sendmesh-open")
    if out.get("type") == "object" and "properties" in out and not open_ended:
        out.setdefault("additionalProperties", False)
    return out


METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def document(group: str, version: str, kind: str, schema: dict[str, Any], source: Any) -> Any:
    """The JSON Schema of one kind: its apiVersion and kind fixed, metadata checked."""
    body = convert(schema)
    properties = body.setdefault("properties", {})
    properties["apiVersion"] = {"type": "string", "enum": [f"{group}/{version}"]}
    properties["kind"] = {"type": "string", "enum": [kind]}
    properties["metadata"] = METADATA
    body["required"] = sorted({"apiVersion", "kind", "metadata", *body.get("required", [])})
    body.setdefault("additionalProperties", False)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{kind} ({group}/{version})",
        "x-source": source,
        **body,
    }


def file_name(group: str, version: str, kind: str) -> str:
    return f"{kind.lower()}-{group.split('.')[0]}-{version}.json"


def from_crd(crd: dict[str, Any], source: Any) -> dict[str, Any]:
    """Every served version of an upstream CustomResourceDefinition."""
    spec = crd["spec"]
    kind = spec["names"]["kind"]
    return {
        file_name(spec["group"], v["name"], kind): document(
            spec["group"], v["name"], kind, v["schema"]["openAPIV3Schema"], source
        )
        for v in spec["versions"]
        if v.get("served", True)
    }


def from_excerpt(excerpt: dict[str, Any]) -> dict[str, Any]:
    """A src/ file: group, version, kind, source and an openAPIV3Schema."""
    g, v, k = excerpt["group"], excerpt["version"], excerpt["kind"]
    return {file_name(g, v, k): document(g, v, k, excerpt["openAPIV3Schema"], excerpt["source"])}


def generate() -> dict[str, str]:
    """File name -> JSON text, for every file in src/: an excerpt or a whole CRD."""
    outputs: dict[str, str] = {}
    for path in sorted(SOURCES.glob("*.yaml")):
        for source in yaml.safe_load_all(path.read_text()):
            if not source:
                continue
            if source.get("kind") == "CustomResourceDefinition":
                docs = from_crd(source, f"src/{path.name}")
            else:
                docs = from_excerpt(source)
            for name, doc in docs.items():
                outputs[name] = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    return outputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a *.json is stale")
    parser.add_argument("--crd", type=Path, help="convert a whole upstream CRD file")
    args = parser.parse_args(argv)
    if args.crd:
        for crd in yaml.safe_load_all(args.crd.read_text()):
            if crd and crd.get("kind") == "CustomResourceDefinition":
                for name, doc in from_crd(crd, str(args.crd)).items():
                    print(f"# {name}")
                    print(json.dumps(doc, indent=2, sort_keys=True))
        return 0
    outputs = generate()
    stale = [name for name, text in outputs.items() if _read(HERE / name) != text]
    extra = sorted({p.name for p in HERE.glob("*.json")} - set(outputs))
    if args.check:
        for name in stale:
            print(f"{name} does not match src/: run {Path(__file__).name}", file=sys.stderr)
        for name in extra:
            print(f"{name} has no source in src/", file=sys.stderr)
        return 1 if stale or extra else 0
    for name in stale:
        (HERE / name).write_text(outputs[name])
        print(f"wrote {name}")
    return 0


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


if __name__ == "__main__":
    sys.exit(main())
