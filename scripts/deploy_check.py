"""`make deploy-check`: render the Kubernetes overlays and the KServe objects into
build/deploy/, then validate every object offline.

- Rendering: the subset of kustomize these manifests use, in Python (kustomize itself is
  not installable from the package registries): a kustomization's `resources` (files, or
  directories with a kustomization of their own) and `patches` (strategic-merge patch
  files, matched by kind and name; lists of objects with a `name` - containers, env,
  volumes, volumeMounts - merged by name, other lists replaced). Any other field of a
  kustomization is refused, so a manifest cannot use what this renderer would ignore.
  tests/unit/test_deploy_manifests.py compares the output with `kubectl kustomize`
  where kubectl is installed.
- Core objects: against the Kubernetes schemas of KUBERNETES_VERSION
  (`kubernetes-validate`, strict: unknown fields are errors; an unknown kind is an error).
- KServe objects: against KServe's own CRD schemas, vendored in deploy/schemas/kserve/
  (SOURCE.md: where from, which version), with every object closed as the API server's
  strict field validation would (unknown fields are errors, except where the schema says
  `x-kubernetes-preserve-unknown-fields`).
- The Prometheus adapter's rule serves the metric the HorizontalPodAutoscaler scales on.

Exit status 1 and one line per problem if anything fails.
"""

from __future__ import annotations

import copy
import gzip
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
OVERLAYS = DEPLOY / "kubernetes" / "overlays"
KSERVE = DEPLOY / "kserve"
SCHEMAS = DEPLOY / "schemas" / "kserve"
OUT = ROOT / "build" / "deploy"
ADAPTER_RULES = DEPLOY / "kubernetes" / "prometheus-adapter-rules.yaml"
KUBERNETES_VERSION = "1.32"  # the schemas core objects are validated against

KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "resources", "patches"}
MERGE_KEY = "name"

Doc = dict[str, Any]


def load_all(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def render(directory: Path) -> list[Doc]:
    """The objects a kustomization directory gives (resources in order, then patched)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - KUSTOMIZATION_FIELDS
    if unknown:
        raise ValueError(f"{directory}/kustomization.yaml: not rendered here: {sorted(unknown)}")
    docs: list[Doc] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        docs += render(path) if path.is_dir() else load_all(path)
    for patch in kustomization.get("patches", []):
        if set(patch) != {"path"}:
            raise ValueError(f"{directory}: only `patches: - path: <file>` is rendered here")
        for change in load_all(directory / patch["path"]):
            target = _find(docs, change["kind"], change["metadata"]["name"])
            merged = merge(copy.deepcopy(target), change)
            target.clear()
            target.update(merged)
    return docs


def _find(docs: list[Doc], kind: str, name: str) -> Doc:
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise ValueError(f"a patch targets {kind}/{name}, which no resource defines")


def merge(base: Any, change: Any) -> Any:
    """Strategic merge for the fields these manifests patch."""
    if isinstance(base, dict) and isinstance(change, dict):
        merged = dict(base)
        for key, value in change.items():
            if isinstance(key, str) and key.startswith("$"):
                raise ValueError(f"patch directive {key} is not rendered here")
            merged[key] = merge(base[key], value) if key in base else value
        return merged
    if _keyed(base) and _keyed(change):
        # as kustomize orders them: the patch's new items first, then the others
        names = {item[MERGE_KEY]: item for item in change}
        merged_list = [
            merge(old, names[old[MERGE_KEY]]) if old[MERGE_KEY] in names else old for old in base
        ]
        known = {old[MERGE_KEY] for old in base}
        return [item for item in change if item[MERGE_KEY] not in known] + merged_list
    return change


def _keyed(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(i, dict) and MERGE_KEY in i for i in value)
    )


def closed(schema: Any) -> Any:
    """The schema with every object closed to the fields it lists (as the API server's
    strict field validation), except where unknown fields are preserved by design."""
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: closed(v) for k, v in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def kserve_schemas() -> dict[tuple[str, str], Any]:
    """(apiVersion, kind) -> the vendored CRD schema, closed."""
    found = {}
    for path in sorted(SCHEMAS.glob("*.json.gz")):
        crd = json.loads(gzip.decompress(path.read_bytes()))
        schema = closed(crd["schema"])
        schema["properties"]["metadata"] = {"type": "object"}  # ObjectMeta: checked below
        found[(f"{crd['group']}/{crd['version']}", crd["kind"])] = schema
    return found


def validate_core(doc: Doc) -> list[str]:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{_name(doc)}: {exc.message} (at {'/'.join(map(str, exc.path))})"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{_name(doc)}: no Kubernetes {KUBERNETES_VERSION} schema for this kind"]
    return []


def validate_kserve(doc: Doc, schemas: dict[tuple[str, str], Any]) -> list[str]:
    import jsonschema

    schema = schemas.get((doc.get("apiVersion", ""), doc.get("kind", "")))
    if schema is None:
        return [f"{_name(doc)}: no vendored KServe schema for {doc.get('apiVersion')}"]
    problems = [
        f"{_name(doc)}: {error.message} (at {'/'.join(map(str, error.absolute_path))})"
        for error in jsonschema.Draft7Validator(schema).iter_errors(doc)
    ]
    # ObjectMeta, against the Kubernetes schema (a ConfigMap carries nothing else)
    meta = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc.get("metadata", {})}
    return problems + [p.replace("ConfigMap", doc["kind"]) for p in validate_core(meta)]


def _name(doc: Doc) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def check_adapter(docs: list[Doc]) -> list[str]:
    served = {rule["name"]["as"] for rule in yaml.safe_load(ADAPTER_RULES.read_text())["rules"]}
    problems = []
    for hpa in (d for d in docs if d["kind"] == "HorizontalPodAutoscaler"):
        for metric in hpa["spec"]["metrics"]:
            if metric["type"] == "Pods" and metric["pods"]["metric"]["name"] not in served:
                problems.append(
                    f"{_name(hpa)}: scales on {metric['pods']['metric']['name']}, which "
                    f"{ADAPTER_RULES.name} does not serve"
                )
    return problems


def rendered() -> dict[str, list[Doc]]:
    """Every output file's objects: one per overlay, and the KServe objects."""
    out = {overlay.name: render(overlay) for overlay in sorted(OVERLAYS.iterdir())}
    out["kserve"] = [d for path in sorted(KSERVE.glob("*.yaml")) for d in load_all(path)]
    return out


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    schemas = kserve_schemas()
    problems: list[str] = []
    for name, docs in rendered().items():
        path = OUT / f"{name}.yaml"
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        for doc in docs:
            if doc["apiVersion"].startswith("serving.kserve.io/"):
                found = validate_kserve(doc, schemas)
            else:
                found = validate_core(doc)
            problems += [f"{path.relative_to(ROOT)}: {p}" for p in found]
        if name != "kserve":
            problems += [f"{path.relative_to(ROOT)}: {p}" for p in check_adapter(docs)]
        kinds = ", ".join(sorted({d["kind"] for d in docs}))
        print(f"{path.relative_to(ROOT)}: {len(docs)} objects ({kinds})")
    for problem in problems:
        print(f"FAIL {problem}")
    if not problems:
        print(
            f"valid: core objects against Kubernetes {KUBERNETES_VERSION} (strict), KServe "
            "objects against the vendored CRD schemas (closed)"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
