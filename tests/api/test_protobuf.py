"""Decoding kubectl's protobuf request bodies (procorch.api.protobuf).

The fixtures are real kubectl 1.32/1.33 request bodies (see tests/fixtures/protobuf/README.md);
the hand-built bodies below cover what no kubectl generator sends (times, raw JSON, packed
numbers, unknown fields) and the error paths.
"""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path
from typing import Any

import pytest

from procorch.api.errors import ApiError, BadRequest, UnsupportedMediaType
from procorch.api.protobuf import KINDS, PROTOBUF_CONTENT_TYPE, decode
from procorch.api.protobuf.decoder import MESSAGES
from procorch.api.protobuf.schema import compile_tables
from procorch.api.protobuf.wire import fields

FIXTURES = Path(__file__).parent.parent / "fixtures" / "protobuf"
FIXTURE_NAMES = sorted(p.stem for p in FIXTURES.glob("*.pb"))


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.pb").read_bytes()


def decoded(name: str) -> dict[str, Any]:
    return decode(fixture(name))


# A minimal protobuf writer, to build bodies kubectl never sends.


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def vi(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def ld(number: int, *payload: bytes | str) -> bytes:
    data = b"".join(p.encode() if isinstance(p, str) else p for p in payload)
    return varint(number << 3 | 2) + varint(len(data)) + data


def entry(number: int, key: str, value: bytes | str) -> bytes:
    return ld(number, ld(1, key), ld(2, value))


def envelope(
    api_version: str, kind: str, raw: bytes, *, encoding: str = "", content_type: str = ""
) -> bytes:
    return (
        b"k8s\x00"
        + ld(1, ld(1, api_version), ld(2, kind))
        + ld(2, raw)
        + ld(3, encoding)
        + ld(4, content_type)
    )


def timestamp(seconds: int, nanos: int = 0) -> bytes:
    return vi(1, seconds) + (vi(2, nanos) if nanos else b"")


# Real kubectl bodies.


def test_fixtures_are_present_and_paired() -> None:
    assert len(FIXTURE_NAMES) >= 30
    for name in FIXTURE_NAMES:
        assert (FIXTURES / f"{name}.json").exists(), name


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_kubectl_body_decodes_to_its_json_form(name: str) -> None:
    expected = json.loads((FIXTURES / f"{name}.json").read_text())
    assert decoded(name) == expected


def test_content_type_constant_is_the_kubernetes_protobuf_media_type() -> None:
    assert PROTOBUF_CONTENT_TYPE == "application/vnd.kubernetes.protobuf"


def test_pointer_zero_replicas_is_kept() -> None:
    assert decoded("create-deployment-zero-replicas")["spec"]["replicas"] == 0


def test_plain_zero_values_are_dropped() -> None:
    # kubectl's body carries generation 0, empty selfLink, uid, status.phase "" and so on.
    namespace = decoded("create-namespace")
    assert namespace == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}


def test_secret_data_comes_back_as_base64_of_the_original_bytes() -> None:
    data = decoded("create-secret-generic")["data"]
    assert base64.b64decode(data["password"]) == b"s3cr=t!"
    assert base64.b64decode(data["username"]) == b"admin"


def test_binary_configmap_file_goes_to_binary_data() -> None:
    configmap = decoded("create-configmap")
    assert base64.b64decode(configmap["binaryData"]["blob"]) == b"\x00\x01\xff\xfe binary"
    assert configmap["data"]["file.txt"] == "line1\nline2\n"


def test_map_entries_with_empty_values_are_kept() -> None:
    data = decoded("create-secret-empty-value")["data"]
    assert data == {"empty": "", "full": base64.b64encode(b"yes").decode()}
    assert decoded("create-configmap-empty-value")["data"] == {"empty": ""}


def test_core_group_is_kept_as_an_empty_string_in_lists() -> None:
    rules = decoded("create-role")["rules"]
    assert rules[0]["apiGroups"] == [""]
    assert rules[1]["apiGroups"] == ["apps"]


def test_inline_members_are_flattened_into_their_parent() -> None:
    spec = decoded("create-job-from-cronjob")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["scratch"] == {"name": "scratch", "emptyDir": {}}
    assert volumes["cfg"]["configMap"]["name"] == "cfg"  # from localObjectReference
    main = spec["containers"][0]
    assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"  # from the probe handler
    assert "handler" not in main["livenessProbe"]
    env = {e["name"]: e for e in main["env"]}
    assert env["CFG_A"]["valueFrom"]["configMapKeyRef"] == {
        "name": "cfg",
        "key": "a",
        "optional": True,
    }
    rules = decoded("create-ingress")["spec"]["rules"]
    assert rules[0]["http"]["paths"][0]["path"] == "/"  # from ingressRuleValue


def test_pointer_false_and_zero_survive_in_a_pod_template() -> None:
    job = decoded("create-job-from-cronjob")
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["suspend"] is False
    pod = job["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 0
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsUser"] == 0
    assert pod["containers"][0]["securityContext"]["privileged"] is False
    assert "hostNetwork" not in pod  # a plain bool, false, is dropped


def test_int_or_string_decodes_to_int_or_string() -> None:
    assert decoded("create-service-nodeport")["spec"]["ports"][0]["targetPort"] == 8080
    assert decoded("create-pdb")["spec"]["minAvailable"] == "50%"
    main = decoded("create-job-from-cronjob")["spec"]["template"]["spec"]["containers"][0]
    assert main["readinessProbe"]["tcpSocket"]["port"] == "http"


def test_autoscale_bodies_of_both_hpa_versions() -> None:
    v1 = decoded("autoscale-v1")
    assert (v1["apiVersion"], v1["spec"]["targetCPUUtilizationPercentage"]) == (
        "autoscaling/v1",
        80,
    )
    v2 = decoded("autoscale-v2")
    assert v2["apiVersion"] == "autoscaling/v2"
    assert v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 80


# Hand-built bodies.


def test_times_render_as_rfc3339_and_microtimes_keep_microseconds() -> None:
    meta = ld(1, "holder") + ld(8, timestamp(1795630796)) + ld(9, timestamp(0))
    spec = (
        ld(1, "node-1")
        + vi(2, 40)
        + ld(3, timestamp(1795630796, 123456789))
        + ld(4, timestamp(1795630800))
        + vi(5, 0)
    )
    lease = decode(envelope("coordination.k8s.io/v1", "Lease", ld(1, meta) + ld(2, spec)))
    assert lease["metadata"] == {
        "name": "holder",
        "creationTimestamp": "2026-11-25T18:19:56Z",
        "deletionTimestamp": "1970-01-01T00:00:00Z",
    }
    assert lease["spec"] == {
        "holderIdentity": "node-1",
        "leaseDurationSeconds": 40,
        "acquireTime": "2026-11-25T18:19:56.123456Z",
        "renewTime": "2026-11-25T18:20:00.000000Z",
        "leaseTransitions": 0,
    }


def test_time_with_nanoseconds_keeps_whole_seconds() -> None:
    meta = ld(1, "x") + ld(8, timestamp(1795630796, 999_999_999))
    namespace = decode(envelope("v1", "Namespace", ld(1, meta)))
    assert namespace["metadata"]["creationTimestamp"] == "2026-11-25T18:19:56Z"


def test_empty_times_are_left_out() -> None:
    # Go's zero time travels as an empty message, pointer or not.
    event = ld(1, ld(1, "e") + ld(8, b"") + ld(9, b"")) + ld(6, b"") + ld(10, b"") + vi(8, 2)
    assert decode(envelope("v1", "Event", event)) == {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "e"},
        "count": 2,
    }


def test_managed_fields_carry_their_raw_json() -> None:
    managed = ld(1, "kubectl") + ld(2, "Update") + ld(6, "FieldsV1") + ld(7, ld(1, '{"f:data":{}}'))
    configmap = decode(envelope("v1", "ConfigMap", ld(1, ld(1, "c") + ld(17, managed))))
    assert configmap["metadata"]["managedFields"] == [
        {
            "manager": "kubectl",
            "operation": "Update",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {}},
        }
    ]


def test_negative_numbers_sign_extended_to_64_bits_decode_negative() -> None:
    body = ld(1, ld(1, "low")) + vi(2, -5)
    assert decode(envelope("scheduling.k8s.io/v1", "PriorityClass", body))["value"] == -5


def test_repeated_numbers_are_read_packed_or_unpacked() -> None:
    packed = ld(4, varint(3000) + varint(4000))
    unpacked = vi(4, 5000)
    pod_spec = ld(14, packed + unpacked) + ld(2, ld(1, "c"))
    pod = decode(envelope("v1", "Pod", ld(1, ld(1, "p")) + ld(2, pod_spec)))
    assert pod["spec"]["securityContext"]["supplementalGroups"] == [3000, 4000, 5000]


def test_unknown_fields_are_skipped() -> None:
    fixed64 = varint(90 << 3 | 1) + bytes(8)
    fixed32 = varint(91 << 3 | 5) + bytes(4)
    meta = ld(1, "cm") + vi(99, 7) + ld(98, "future")
    body = ld(1, meta) + fixed64 + fixed32 + entry(2, "k", "v")
    configmap = decode(envelope("v1", "ConfigMap", body))
    assert configmap == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm"},
        "data": {"k": "v"},
    }


def test_deployment_strategy_keeps_pointer_int_or_string_zero() -> None:
    zero = vi(1, 0) + vi(2, 0)
    quarter = vi(1, 1) + ld(3, "25%")
    rolling = ld(1, zero) + ld(2, quarter)
    spec = vi(1, 2) + ld(4, ld(1, "RollingUpdate") + ld(2, rolling))
    deployment = decode(envelope("apps/v1", "Deployment", ld(1, ld(1, "d")) + ld(2, spec)))
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
    }


def test_ephemeral_container_common_fields_are_flattened() -> None:
    common = ld(1, "debug") + ld(2, "busybox") + ld(3, "sh")
    ephemeral = ld(1, common) + ld(2, "main")
    pod = decode(envelope("v1", "Pod", ld(1, ld(1, "p")) + ld(2, ld(34, ephemeral))))
    assert pod["spec"]["ephemeralContainers"] == [
        {"name": "debug", "image": "busybox", "command": ["sh"], "targetContainerName": "main"}
    ]


def test_hpa_v2_quantities_and_behavior_decode() -> None:
    target = ld(1, "AverageValue") + ld(3, ld(1, "500m"))
    metric = ld(1, "Resource") + ld(4, ld(1, "cpu") + ld(2, target))
    policy = ld(1, "Pods") + vi(2, 4) + vi(3, 60)
    behavior = ld(2, vi(3, 0) + ld(2, policy))
    ref = ld(1, "Deployment") + ld(2, "web") + ld(3, "apps/v1")
    spec = ld(1, ref) + vi(3, 10) + ld(4, metric) + ld(5, behavior)
    hpa = decode(
        envelope("autoscaling/v2", "HorizontalPodAutoscaler", ld(1, ld(1, "h")) + ld(2, spec))
    )
    assert hpa["spec"] == {
        "scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
        "maxReplicas": 10,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "AverageValue", "averageValue": "500m"},
                },
            }
        ],
        "behavior": {
            "scaleDown": {
                "stabilizationWindowSeconds": 0,
                "policies": [{"type": "Pods", "value": 4, "periodSeconds": 60}],
            }
        },
    }


def test_endpoint_slice_pointer_bools_and_ports() -> None:
    endpoint = ld(1, "127.0.0.5") + ld(2, vi(1, 1) + vi(3, 0)) + ld(6, "node-1")
    port = ld(1, "") + ld(2, "TCP") + vi(3, 8080)
    body = ld(1, ld(1, "web-abc")) + ld(2, endpoint) + ld(3, port) + ld(4, "IPv4")
    slice_ = decode(envelope("discovery.k8s.io/v1", "EndpointSlice", body))
    assert slice_["endpoints"] == [
        {
            "addresses": ["127.0.0.5"],
            "conditions": {"ready": True, "terminating": False},
            "nodeName": "node-1",
        }
    ]
    assert slice_["ports"] == [{"name": "", "protocol": "TCP", "port": 8080}]
    assert slice_["addressType"] == "IPv4"


def test_scale_subresource_body_decodes() -> None:
    body = ld(1, ld(1, "web") + ld(6, "17")) + ld(2, vi(1, 0)) + ld(3, vi(1, 3) + ld(2, "app=web"))
    assert decode(envelope("autoscaling/v1", "Scale", body)) == {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {"name": "web", "resourceVersion": "17"},
        "status": {"replicas": 3, "selector": "app=web"},
    }


# Errors.


def assert_error(body: bytes, error: type[ApiError], *fragments: str) -> ApiError:
    with pytest.raises(error) as caught:
        decode(body)
    for fragment in fragments:
        assert fragment in caught.value.message
    return caught.value


def test_body_without_the_magic_prefix_is_a_bad_request() -> None:
    err = assert_error(b'{"kind":"Pod"}', BadRequest, "k8s")
    assert err.status()["code"] == 400


def test_unknown_kind_is_an_unsupported_media_type() -> None:
    err = assert_error(
        envelope("example.com/v1", "Widget", ld(1, ld(1, "w"))),
        UnsupportedMediaType,
        '"Widget"',
        '"example.com/v1"',
    )
    assert err.status()["code"] == 415


def test_served_kind_in_an_unknown_version_is_an_unsupported_media_type() -> None:
    assert_error(envelope("apps/v1beta1", "Deployment", b""), UnsupportedMediaType, "Deployment")


def test_compressed_or_foreign_content_is_an_unsupported_media_type() -> None:
    raw = ld(1, ld(1, "n"))
    assert_error(envelope("v1", "Namespace", raw, encoding="gzip"), UnsupportedMediaType, "gzip")
    assert_error(
        envelope("v1", "Namespace", raw, content_type="application/json"),
        UnsupportedMediaType,
        "application/json",
    )


def test_envelope_without_type_meta_is_a_bad_request() -> None:
    assert_error(b"k8s\x00" + ld(2, ld(1, ld(1, "x"))), BadRequest, "apiVersion and kind")


def test_truncated_object_is_a_bad_request_naming_the_path() -> None:
    body = fixture("create-deployment")
    err = assert_error(body[:-12], BadRequest)
    assert "envelope" in err.message or "Deployment" in err.message
    raw = ld(1, ld(1, "d")) + ld(2, ld(3, ld(2, ld(2, ld(1, "c") + b"\x12\x7fim"))))
    assert_error(
        envelope("apps/v1", "Deployment", raw),
        BadRequest,
        'Deployment in version "v1" cannot be handled as a Deployment',
        "spec.template.spec.containers[0]",
        "runs past the end",
    )


def test_wrong_wire_type_for_a_field_is_a_bad_request() -> None:
    # spec.replicas as a string instead of a varint.
    raw = ld(1, ld(1, "d")) + ld(2, ld(1, "three"))
    assert_error(envelope("apps/v1", "Deployment", raw), BadRequest, "spec.replicas", "varint")
    # metadata as a varint instead of a message.
    assert_error(envelope("v1", "Namespace", vi(1, 5)), BadRequest, "metadata")


def test_invalid_utf8_is_a_bad_request() -> None:
    raw = ld(1, ld(1, b"\xff\xfe"))
    assert_error(envelope("v1", "Namespace", raw), BadRequest, "metadata.name", "UTF-8")


def test_groups_overlong_varints_and_field_zero_are_bad_requests() -> None:
    assert_error(envelope("v1", "Namespace", varint(1 << 3 | 3)), BadRequest, "wire type")
    assert_error(envelope("v1", "Namespace", b"\x08" + b"\xff" * 11), BadRequest, "varint")
    assert_error(envelope("v1", "Namespace", b"\x00\x00"), BadRequest, "field number 0")


def test_bad_embedded_json_and_time_out_of_range_are_bad_requests() -> None:
    managed = ld(7, ld(1, "{not json"))
    raw = ld(1, ld(1, "c") + ld(17, managed))
    assert_error(envelope("v1", "ConfigMap", raw), BadRequest, "managedFields[0].fieldsV1")
    raw = ld(1, ld(1, "c") + ld(8, timestamp(1 << 62)))
    assert_error(envelope("v1", "ConfigMap", raw), BadRequest, "out of range")


def split_envelope(body: bytes) -> tuple[str, str, bytes]:
    parts = {number: value for number, _, value in fields(body[4:]) if isinstance(value, bytes)}
    type_meta = {n: v for n, _, v in fields(parts[1]) if isinstance(v, bytes)}
    return type_meta[1].decode(), type_meta[2].decode(), parts[2]


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_damaged_bodies_fail_only_with_api_errors(name: str) -> None:
    # Damage the object inside an intact envelope, so that the decoder walks into it.
    api_version, kind, raw = split_envelope(fixture(name))
    rng = random.Random(name)
    damaged = [raw[:cut] for cut in range(len(raw))]
    for _ in range(300):
        mutated = bytearray(raw)
        for _ in range(rng.randint(1, 3)):
            mutated[rng.randrange(len(raw))] = rng.randrange(256)
        damaged.append(bytes(mutated))
    failures = 0
    for candidate in damaged:
        try:
            result = decode(envelope(api_version, kind, candidate))
        except BadRequest:
            failures += 1
            continue
        assert result["kind"] == kind
    assert failures > 0


# The tables themselves.


def test_every_served_kind_has_a_message_table() -> None:
    for (api_version, kind), message in KINDS.items():
        assert message in MESSAGES, (api_version, kind)
        assert MESSAGES[message][1].name == "metadata", (api_version, kind)


def test_table_typos_fail_at_compile_time() -> None:
    with pytest.raises(ValueError, match="unknown core.Nope"):
        compile_tables({"core": {"Thing": "1 name; 2 spec:Nope"}})
    with pytest.raises(ValueError, match="repeats"):
        compile_tables({"core": {"Thing": "1 name; 1 other"}})
    with pytest.raises(ValueError, match="unparsable"):
        compile_tables({"core": {"Thing": "one name"}})
