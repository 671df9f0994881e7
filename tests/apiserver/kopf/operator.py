"""A small kopf operator on the Widget custom resource, run by tests/apiserver/test_kopf.py."""

import kopf


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    settings.peering.name = "example"
    settings.peering.mandatory = True
    settings.peering.lifetime = 10
    settings.posting.enabled = True


@kopf.on.create("example.com", "v1", "widgets")
def created(spec, name, logger, **_):
    logger.info(f"widget {name} created")
    return {"doubled": spec["size"] * 2}


@kopf.on.field("example.com", "v1", "widgets", field="spec.size")
def resized(old, new, patch, **_):
    patch.status["size-changes"] = f"{old}->{new}"
