"""What the operator may reach on a pipeline's behalf, decided before it reaches anything.

The operator runs with its own network position and its own credentials (the chart's storeSecret):
a URL or a data URI taken from a pipeline's spec is used by it only when the platform team allowed
it in the chart — Prometheus URLs by ``prometheus.url`` / ``prometheus.allowedUrls``, listings by
``dataPrefixes`` (per namespace). Pure and standard library only: the same functions decide in the
reconciler and are unit-tested alone. The local runner uses none of this: there the user's own
process reaches the user's own URLs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

NAMESPACE_PLACEHOLDER = "{namespace}"
PROMETHEUS_VALUES = "prometheus.allowedUrls"  # the chart values that allow a Prometheus
DATA_VALUES = "dataPrefixes"  # the chart value that allows listings
IMAGE_VALUES = "pipelines.allowedImages"  # the chart value that allows step and model images
CODE_VALUES = "pipelines.customCode"  # the chart value that allows `module:function` models
LISTED_SCHEMES = ("s3", "file")  # file:// only where the platform names a file:// prefix itself
_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNSAFE = re.compile(r"[\s\\%]|[\x00-\x1f\x7f]")  # whitespace, backslashes, percent-encoding, controls
_UNSAFE_URI = re.compile(r"[\\\x00-\x1f\x7f]")  # backslashes, controls (a key may hold spaces)


class NotAllowed(ValueError):
    """A URL or URI the operator refuses to use, with the reason as its message."""


@dataclass(frozen=True)
class Endpoint:
    """An http(s) URL taken apart: what is compared, and what is queried (``url``), is rebuilt from
    these parts, never the text as written."""

    scheme: str
    host: str  # lower case; an IPv6 address without brackets
    port: int
    path: str  # without a trailing slash; "" for the root

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"

    def covers(self, other: Endpoint) -> bool:
        """Whether ``other`` is this endpoint or under its path: same scheme, host and port, and a
        path equal to this one's or below it segment by segment (/prom does not cover /prometheus)."""
        same = (self.scheme, self.host, self.port) == (other.scheme, other.host, other.port)
        return same and (other.path == self.path or other.path.startswith(self.path + "/"))


def parse_endpoint(url: str) -> Endpoint:
    """An http(s) URL with no user, password, query or fragment; raises NotAllowed saying why not."""
    if _UNSAFE.search(url):
        raise NotAllowed("must not contain whitespace, backslashes, control or percent-encoded characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise NotAllowed(f"is not a URL: {exc}") from None
    if parts.scheme not in _DEFAULT_PORTS:
        raise NotAllowed("must be an http:// or https:// URL")
    if "@" in parts.netloc:
        raise NotAllowed("must not carry a user or password (user@host)")
    if "?" in url or parts.query:
        raise NotAllowed("must not have a query string (?...)")
    if "#" in url or parts.fragment:
        raise NotAllowed("must not have a fragment (#...)")
    if not parts.hostname:
        raise NotAllowed("has no host")
    segments = parts.path.split("/")
    if any(s in (".", "..") for s in segments):
        raise NotAllowed("must not have . or .. path segments")
    return Endpoint(
        parts.scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[parts.scheme], parts.path.rstrip("/")
    )


def parse_allowed(urls: list[str]) -> list[Endpoint]:
    """The platform's allow-list (chart values), each entry a URL prefix; a malformed entry is a
    configuration error (ValueError naming it), not something to guess around."""
    out = []
    for url in urls:
        try:
            out.append(parse_endpoint(url))
        except NotAllowed as exc:
            raise ValueError(f"{PROMETHEUS_VALUES}: {url!r} {exc}") from None
    return out


def prometheus_endpoint(
    spec_url: str | None, default_url: str | None, allowed: list[Endpoint]
) -> Endpoint | None:
    """The Prometheus the operator queries for a pipeline: its spec's URL when the allow-list (or
    the operator's own default, always trusted) covers it, else the default; None when there is
    none. Raises NotAllowed, with the message for the pipeline's status, for a URL not allowed."""
    default = parse_endpoint(default_url) if default_url else None
    if not spec_url:
        return default
    field = "spec.serve.canary.analysis.prometheusUrl"
    try:
        wanted = parse_endpoint(spec_url)
    except NotAllowed as exc:
        raise NotAllowed(f"{field}: {spec_url} {exc}") from None
    trusted = [*allowed, *([default] if default else [])]
    if any(a.covers(wanted) for a in trusted):
        return wanted
    listed = ", ".join(a.url for a in trusted) or "none"
    raise NotAllowed(
        f"{field}: the operator does not query {wanted.url}: it queries only the Prometheus URLs the "
        f"platform team allows in the chart values prometheus.url and {PROMETHEUS_VALUES} "
        f"(allowed: {listed}); ask them to add it, or remove the field to use the default"
    )


def data_prefixes(namespace: str, templates: list[str], artifacts_uri: str | None) -> list[str]:
    """The URI prefixes a namespace's pipelines may have the operator list, each ending with "/":
    the chart's ``dataPrefixes`` with ``{namespace}`` filled in, or by default the namespace's own
    folder of the chart's s3:// artifact store (<artifactsUri>/<namespace>/)."""
    if not templates and artifacts_uri and artifacts_uri.startswith("s3://"):
        templates = [f"{artifacts_uri.rstrip('/')}/{NAMESPACE_PLACEHOLDER}/"]
    out = []
    for template in templates:
        prefix = template.replace(NAMESPACE_PLACEHOLDER, namespace)
        out.append(prefix if prefix.endswith("/") else prefix + "/")
    return out


def check_prefix_template(template: str) -> str:
    """A ``dataPrefixes`` entry as the operator reads it at start: s3://bucket/... or file:///...,
    nothing that could widen it (wildcards, .., a query); ValueError naming the entry."""
    scheme = template.split("://", 1)[0] if "://" in template else ""
    sample = template.replace(NAMESPACE_PLACEHOLDER, "ns")
    problem = _uri_problem(sample)
    if scheme not in LISTED_SCHEMES:
        problem = f"must start with {' or '.join(s + '://' for s in LISTED_SCHEMES)}"
    elif any(c in sample for c in "*?[]{}"):
        problem = "must not contain glob characters"
    elif len(sample.split("://", 1)[1].strip("/")) == 0:
        problem = "must name a bucket or folder"
    if problem:
        raise ValueError(f"{DATA_VALUES}: {template!r} {problem}")
    return template


def _uri_problem(uri: str) -> str | None:
    if _UNSAFE_URI.search(uri):
        return "must not contain backslashes or control characters"
    if "::" in uri:
        return "must not chain file systems (::)"
    if "#" in uri or "?versionId" in uri:
        return "must not have a fragment or a version"
    rest = uri.split("://", 1)[1] if "://" in uri else uri
    if any(s in (".", "..") for s in rest.split("/")):
        return "must not have . or .. path segments"
    return None


def listing_refusal(uri: str, field: str, prefixes: list[str]) -> str | None:
    """Why the operator must not list ``uri`` (spec.data.uri, spec.labeling.source) with its own
    credentials, or None: it lists only s3:// URIs (file:// where the platform allows a file
    prefix) that start with one of the namespace's ``prefixes`` (each ending with "/"), compared
    as text after refusing anything that could leave them (.. segments, chained file systems)."""
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    allowed = ", ".join(prefixes) or f"none: the chart sets no {DATA_VALUES} and no s3:// artifactsUri"
    where = (
        f"(allowed for this namespace: {allowed}; the platform team sets them in the chart value "
        f"{DATA_VALUES})"
    )
    if scheme not in LISTED_SCHEMES or not any(p.startswith(scheme + "://") for p in prefixes):
        kind = f"{scheme}://" if scheme else "a plain path"
        pvc = (
            " — a PersistentVolumeClaim's files are not visible to the operator"
            if scheme in ("", "file")
            else ""
        )
        return (
            f"{field}: the operator lists data only under the namespace's s3:// prefixes; it does not "
            f"list {kind} URIs like {uri}{pvc} {where}"
        )
    problem = _uri_problem(uri)
    if problem:
        return f"{field}: {uri} {problem}"
    if not any(uri.startswith(p) for p in prefixes):
        return (
            f"{field}: the operator does not list {uri}: it is not under this namespace's data "
            f"prefixes {where}"
        )
    return None


def check_image_prefix(prefix: str) -> str:
    """An allowed-images entry: a whole image reference, or a prefix ending at a path segment
    (``registry.example/team-a/``): ``registry.example/team`` would also allow ``.../team-evil``."""
    if not prefix or _UNSAFE.search(prefix):
        raise ValueError(f"{IMAGE_VALUES}: {prefix!r} is not an image reference or a prefix of one")
    return prefix


def image_allowed(image: str, allowed: list[str]) -> bool:
    """Whether ``image`` is one of ``allowed`` or under one that ends with ``/`` (none: any image)."""
    return not allowed or any(image == a or (a.endswith("/") and image.startswith(a)) for a in allowed)


def code_refusal(
    image: str | None, model: str, allowed_images: list[str], custom_code: bool
) -> tuple[str, str] | None:
    """Why the platform's chart values do not let a pipeline run this image (spec.train.image; the
    operator's own image is always allowed) or its own model code (spec.train.model
    ``module:function``), as (status message, Event reason), or None."""
    if image is not None and not image_allowed(image, allowed_images):
        message = (
            f"spec.train.image {image!r} is not allowed in this cluster: the platform's {IMAGE_VALUES} "
            f"lists {', '.join(allowed_images)}; leave train.image unset for the operator's image"
        )
        return message, "ImageNotAllowed"
    if ":" in model and not custom_code:
        message = (
            f"spec.train.model {model!r} is code of your own, which this cluster does not run "
            f"({CODE_VALUES}=false): use a built-in model"
        )
        return message, "CustomCodeNotAllowed"
    return None


def pipeline_refusal(
    *,
    prometheus_url: str | None,
    retrain_data_uri: str | None,
    labeling_source: str | None,
    default_prometheus: str | None,
    allowed_prometheus: list[Endpoint],
    prefixes: list[str],
) -> tuple[str, str] | None:
    """Why the operator refuses a pipeline that asks it to reach what the platform did not allow,
    as (status message, Event reason), or None. ``retrain_data_uri``: spec.data.uri when
    spec.retrain.onNewData has the operator list it; ``labeling_source``: spec.labeling.source."""
    try:
        prometheus_endpoint(prometheus_url, default_prometheus, allowed_prometheus)
    except NotAllowed as exc:
        return str(exc), "PrometheusNotAllowed"
    for uri, field in ((retrain_data_uri, "spec.data.uri"), (labeling_source, "spec.labeling.source")):
        refusal = listing_refusal(uri, field, prefixes) if uri else None
        if refusal:
            return refusal, "ListingNotAllowed"
    return None
