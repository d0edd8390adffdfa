"""Every example of the OpenAPI document (argument 1) is valid against its
schema: requests' and responses' alike. Run by openapi_conformance.rs."""

import json
import sys

import jsonschema
import referencing

document = json.load(open(sys.argv[1]))
registry = referencing.Registry().with_resource(
    "urn:document", referencing.Resource.from_contents(document, referencing.jsonschema.DRAFT202012)
)


def check(where, schema, example):
    validator = jsonschema.Draft202012Validator({"$ref": "urn:document#" + where}, registry=registry)
    errors = list(validator.iter_errors(example))
    assert not errors, f"{where}: {errors[0].message}"


count = 0
for path, item in document["paths"].items():
    for method, operation in item.items():
        pointer = "/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method
        bodies = [("/requestBody", operation.get("requestBody", {}))]
        bodies += [(f"/responses/{status}", response) for status, response in operation["responses"].items()]
        for at, body in bodies:
            for media, content in body.get("content", {}).items():
                if "example" in content:
                    check(f"{pointer}{at}/content/{media.replace('/', '~1')}/schema", content["schema"], content["example"])
                    count += 1
for name, schema in document["components"]["schemas"].items():
    for example in ([schema["example"]] if "example" in schema else []) + schema.get("examples", []):
        check(f"/components/schemas/{name}", schema, example)
        count += 1
assert count > 0
print(f"{count} examples match their schemas")
