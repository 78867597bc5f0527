"""The operator queries only the Prometheus URLs the platform allowed (chart values prometheus.url and
prometheus.allowedUrls), and a reply never reaches the status: bounded in bytes and time, checked to
be Prometheus's, its errors told in the client's own words (security review, issue 25.1)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import kopf
import pytest
from mlpipeline import policy
from mlpipeline.api.crd import build_crd
from mlpipeline.api.manifest import ManifestError, parse_manifest, parse_spec
from mlpipeline.controller.serving import ServingReconciler
from mlpipeline.kube.client import Kube
from mlpipeline.kube.jobs import OperatorSettings
from mlpipeline.monitoring import drift_metrics
from mlpipeline.monitoring.analysis import analyse
from mlpipeline.monitoring.prometheus import Prometheus, PrometheusError

from tests.conftest import example

METADATA = "http://169.254.169.254/latest/meta-data/iam/security-credentials/node"
SECRET = '{"AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG"}'
ALLOWED = policy.parse_allowed(["http://prometheus.team-a:9090", "https://thanos.example/api/"])
DEFAULT = "http://prometheus-operated.monitoring:9090"


def refusal(url: str | None, default: str | None = DEFAULT) -> tuple[str, str] | None:
    return policy.pipeline_refusal(
        prometheus_url=url,
        retrain_data_uri=None,
        labeling_source=None,
        default_prometheus=default,
        allowed_prometheus=ALLOWED,
        prefixes=[],
    )


@pytest.mark.parametrize(
    "url",
    [
        METADATA,
        "http://prometheus.team-a:9091",  # another port
        "https://prometheus.team-a:9090",  # another scheme
        "http://prometheus.team-a.evil.example:9090",  # a host that merely starts alike
        "https://thanos.example/apiary",  # /api covers /api/..., not /apiary
    ],
)
def test_a_url_outside_the_allow_list_is_refused_naming_the_chart_value(url: str) -> None:
    refused = refusal(url)
    assert refused is not None
    message, reason = refused
    assert reason == "PrometheusNotAllowed"
    assert message.startswith("spec.serve.canary.analysis.prometheusUrl: the operator does not query")
    assert "prometheus.allowedUrls" in message and "prometheus.url" in message


@pytest.mark.parametrize(
    ("url", "why"),
    [
        (f"{METADATA}?x=", "query string"),  # would swallow the appended /api/v1/query
        ("http://prometheus.team-a:9090/#", "fragment"),
        ("http://prometheus.team-a:9090@169.254.169.254/", "user or password"),
        ("http://prometheus.team-a:9090/../latest", ". or .. path segments"),
        ("http://prometheus.team-a:9090/%2e%2e/latest", "percent-encoded"),
        ("file:///etc/passwd", "http:// or https://"),
        ("http://prometheus-operated.monitoring:9090.evil.example", "is not a URL"),
    ],
)
def test_a_url_that_could_reach_elsewhere_is_refused_even_under_an_allowed_prefix(url: str, why: str) -> None:
    refused = refusal(url)
    assert refused is not None and why in refused[0], refused


@pytest.mark.parametrize(
    "url",
    [
        "http://prometheus.team-a:9090",
        "http://PROMETHEUS.team-a:9090/",
        "https://thanos.example/api",
        "https://thanos.example:443/api/tenant-a",
        DEFAULT,  # the operator's own default is always trusted
    ],
)
def test_allowed_urls_match_by_scheme_host_port_and_path_prefix(url: str) -> None:
    assert refusal(url) is None


def test_nothing_set_means_the_default_and_no_allow_list_allows_only_the_default() -> None:
    assert policy.prometheus_endpoint(None, DEFAULT, []) == policy.parse_endpoint(DEFAULT)
    assert policy.prometheus_endpoint(None, None, []) is None
    with pytest.raises(policy.NotAllowed, match=r"allowed: none"):
        policy.prometheus_endpoint("http://prometheus.team-a:9090", None, [])


def test_a_malformed_allow_list_entry_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match=r"prometheus.allowedUrls: 'http://prom/\?tenant=a'"):
        policy.parse_allowed(["http://prom/?tenant=a"])


def test_the_operator_queries_the_url_it_checked_and_never_one_refused() -> None:
    settings = OperatorSettings(prometheus_allowed=("http://prometheus.team-a:9090",))
    serving = ServingReconciler(Kube(kopf.ConnectionInfo(server="http://127.0.0.1:9")), settings, None, "v")

    def spec(url: str) -> Any:
        document = example("iris")["spec"]
        document["serve"]["canary"]["analysis"] = {"prometheusUrl": url}
        return parse_spec(document)

    assert serving.prometheus(spec(METADATA)) is None
    source = serving.prometheus(spec("http://PROMETHEUS.team-a:9090/"))
    assert source is not None and source.url == "http://prometheus.team-a:9090"


def test_the_api_refuses_query_strings_fragments_and_users_at_apply_time() -> None:
    for url in (f"{METADATA}?x=", "http://prom:9090/#x", "http://me@prom:9090", "gopher://prom"):
        document = example("iris")
        document["spec"]["serve"]["canary"]["analysis"] = {"prometheusUrl": url}
        with pytest.raises(ManifestError) as caught:
            parse_manifest(document)
        errors = {e.path: e.reason for e in caught.value.errors}
        assert list(errors) == ["spec.serve.canary.analysis.prometheusUrl"], errors
    document = example("iris")
    document["spec"]["serve"]["canary"]["analysis"] = {"prometheusUrl": "http://prom.team-a:9090/prom"}
    assert parse_manifest(document).spec.serve.canary.analysis.prometheus_url
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    analysis = schema["properties"]["spec"]["properties"]["serve"]["properties"]["canary"]["properties"][
        "analysis"
    ]
    (rule,) = analysis["x-kubernetes-validations"]
    assert rule["fieldPath"] == ".prometheusUrl" and "matches(" in rule["rule"]
    assert analysis["properties"]["prometheusUrl"]["maxLength"] == 2048  # bounds the rule's CEL cost


def answering(handler: Any, timeout: float = 5.0, max_bytes: int = 1 << 20) -> Prometheus:
    prometheus = Prometheus("http://prometheus.team-a:9090", timeout=timeout, max_bytes=max_bytes)
    prometheus.client = httpx.Client(transport=httpx.MockTransport(handler))
    return prometheus


def failure(prometheus: Prometheus) -> str:
    with pytest.raises(PrometheusError) as caught:
        prometheus.query("up")
    message = str(caught.value)
    assert "ASIA" not in message and "Secret" not in message and "wJal" not in message, message
    return message


def test_a_reply_that_is_not_prometheus_is_never_copied() -> None:
    plain = answering(lambda request: httpx.Response(200, text=SECRET * 20))
    assert failure(plain) == "Prometheus at http://prometheus.team-a:9090: not a Prometheus reply (HTTP 200)"
    json_not_prometheus = answering(lambda request: httpx.Response(200, json={"AccessKeyId": "ASIA"}))
    assert "not a Prometheus reply" in failure(json_not_prometheus)
    error = answering(lambda request: httpx.Response(500, text=SECRET))
    assert "not a Prometheus reply (HTTP 500)" in failure(error)
    no_vector = answering(
        lambda request: httpx.Response(200, json={"status": "success", "data": {"result": [SECRET]}})
    )
    assert "not a Prometheus reply" in failure(no_vector)


def test_prometheus_errors_are_told_by_status_and_error_type_only() -> None:
    body = {"status": "error", "errorType": "bad_data", "error": SECRET}
    refused = answering(lambda request: httpx.Response(400, json=body))
    assert failure(refused) == (
        "Prometheus at http://prometheus.team-a:9090 answered HTTP 400, bad_data: query refused or failed"
    )
    odd = {"status": "error", "errorType": SECRET, "error": SECRET}
    assert "answered HTTP 503: query" in failure(answering(lambda request: httpx.Response(503, json=odd)))


def test_a_reply_is_bounded_in_bytes_and_time() -> None:
    big = answering(lambda request: httpx.Response(200, text="x" * 5000), max_bytes=1000)
    assert "larger than 1000 bytes" in failure(big)

    def dribble() -> Iterator[bytes]:
        for _ in range(50):
            time.sleep(0.05)
            yield b" "

    slow = answering(lambda request: httpx.Response(200, content=dribble()), timeout=0.3)
    started = time.monotonic()
    assert "did not answer within 0.3s" in failure(slow)
    assert time.monotonic() - started < 1.5
    redirect = answering(lambda request: httpx.Response(302, headers={"location": METADATA}))
    assert "HTTP 302" in failure(redirect)


def test_a_real_reply_is_read() -> None:
    body = {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {"feature": "a"}, "value": [1, "0.25"]}]},
    }
    assert answering(lambda request: httpx.Response(200, json=body)).by_label("q", "feature") == {"a": 0.25}


def test_status_fields_carry_the_clients_words_not_the_reply() -> None:
    leaky = answering(lambda request: httpx.Response(200, text=SECRET))
    drift = drift_metrics.read(leaky, "iris", "v1", 0.2, 100, "2026-01-01T00:00:00Z")
    assert drift.message and "not a Prometheus reply" in drift.message and "ASIA" not in drift.message
    spec = parse_spec(example("iris")["spec"]).serve.canary.analysis
    (check,) = analyse(leaky, spec, "v2", "v1")
    assert check.verdict == "nodata" and "ASIA" not in check.query


def test_the_chart_values_reach_the_operator_by_env_and_bad_ones_stop_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlpipeline.controller.handlers import settings_from_env

    monkeypatch.setenv("MLP_PROMETHEUS_URL", DEFAULT)
    monkeypatch.setenv(
        "MLP_PROMETHEUS_ALLOWED_URLS", "http://prometheus.team-a:9090, https://thanos.example/api"
    )
    monkeypatch.setenv("MLP_DATA_PREFIXES", "s3://datasets/{namespace}/,s3://shared/public")
    settings = settings_from_env()
    assert settings.prometheus_url == DEFAULT
    assert settings.prometheus_allowed == ("http://prometheus.team-a:9090", "https://thanos.example/api")
    assert settings.data_prefixes == ("s3://datasets/{namespace}/", "s3://shared/public")
    monkeypatch.setenv("MLP_PROMETHEUS_ALLOWED_URLS", f"{METADATA}?x=")
    with pytest.raises(ValueError, match=r"prometheus\.allowedUrls"):
        settings_from_env()
    monkeypatch.setenv("MLP_PROMETHEUS_ALLOWED_URLS", "")
    monkeypatch.setenv("MLP_DATA_PREFIXES", "s3://*/")
    with pytest.raises(ValueError, match="dataPrefixes"):
        settings_from_env()


def test_every_canary_and_drift_query_keeps_to_the_pipeline_s_namespace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pods of another namespace labeled like this pipeline's (the same version label: the same
    manifest applied there) must not feed its verdicts: every query matches the namespace label the
    scrape attaches, which a pod cannot set itself (issue 25)."""
    from mlpipeline.controller.handlers import settings_from_env
    from mlpipeline.monitoring.prometheus import namespace_scope

    asked: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params["query"])
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": []}})

    prometheus = answering(record)
    scope = namespace_scope(settings_from_env().prometheus_namespace_label, "team-a")
    spec = parse_spec(example("iris")["spec"]).serve.canary.analysis.model_copy(update={"min_requests": 0})
    analyse(prometheus, spec, "v2", "v1", scope=scope)
    drift_metrics.read(prometheus, "iris", "v1", 0.2, 100, "2026-01-01T00:00:00Z", scope)
    assert len(asked) >= 8
    selectors = [q for q in asked if "{" in q]
    assert selectors and all('namespace="team-a",' in q for q in selectors), asked
    assert all(q.count("{") == q.count('namespace="team-a",') for q in asked), asked

    monkeypatch.setenv("MLP_PROMETHEUS_NAMESPACE_LABEL", "kubernetes_namespace")
    assert settings_from_env().prometheus_namespace_label == "kubernetes_namespace"
    monkeypatch.setenv("MLP_PROMETHEUS_NAMESPACE_LABEL", 'x"}or vector(1)#')
    with pytest.raises(ValueError, match=r"prometheus\.namespaceLabel"):
        settings_from_env()


@pytest.mark.parametrize(
    ("image", "model", "reason"),
    [
        ("registry.example/team-a-evil/miner:1", "random_forest", "ImageNotAllowed"),  # merely starts alike
        ("registry.example/team-a", "random_forest", "ImageNotAllowed"),  # the prefix is a folder
        ("docker.io/library/python:3.11", "random_forest", "ImageNotAllowed"),
        (None, "os:system", "CustomCodeNotAllowed"),
        ("registry.example/team-a/trainer:2", "pkg.models:build", "CustomCodeNotAllowed"),
        ("registry.example/team-a/trainer:2", "random_forest", None),
        ("registry.example/tools/exact:1", "random_forest", None),  # a whole reference, listed as is
        (None, "random_forest", None),  # the operator's own image is always allowed
    ],
)
def test_the_platform_decides_which_images_and_code_pipelines_run(
    image: str | None, model: str, reason: str | None
) -> None:
    allowed = ["registry.example/team-a/", "registry.example/tools/exact:1"]
    refused = policy.code_refusal(image, model, allowed, custom_code=False)
    assert (refused[1] if refused else None) == reason
    if refused:
        assert policy.IMAGE_VALUES in refused[0] or policy.CODE_VALUES in refused[0]
    assert policy.code_refusal(image, model, [], custom_code=True) is None  # the defaults: anything


def test_image_and_code_settings_reach_the_operator_and_bad_ones_stop_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlpipeline.controller.handlers import settings_from_env

    monkeypatch.setenv("MLP_ALLOWED_IMAGES", "registry.example/team-a/, ghcr.io/org/img:1")
    monkeypatch.setenv("MLP_CUSTOM_CODE", "false")
    settings = settings_from_env()
    assert settings.allowed_images == ("registry.example/team-a/", "ghcr.io/org/img:1")
    assert settings.custom_code is False
    monkeypatch.setenv("MLP_CUSTOM_CODE", "maybe")
    with pytest.raises(ValueError, match=r"pipelines\.customCode"):
        settings_from_env()
    monkeypatch.setenv("MLP_CUSTOM_CODE", "true")
    monkeypatch.setenv("MLP_ALLOWED_IMAGES", "registry.example/a b/")
    with pytest.raises(ValueError, match=r"pipelines\.allowedImages"):
        settings_from_env()
