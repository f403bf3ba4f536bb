"""Envoy bootstrap for the head pod's JWT sidecar: ``envoy.filters.http.jwt_authn`` with
one provider per ``auth.jwt_issuers`` entry of the platform config, proxying to Serve on
loopback. Streams stay open (no route timeout): completions can run for minutes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

__all__ = ["envoy_bootstrap"]

_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
_JWT = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"


def _endpoint(name: str, host: str, port: int) -> dict[str, Any]:
    return {
        "cluster_name": name,
        "endpoints": [
            {
                "lb_endpoints": [
                    {
                        "endpoint": {
                            "address": {"socket_address": {"address": host, "port_value": port}}
                        }
                    }
                ]
            }
        ],
    }


def _jwks_cluster(name: str, url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"jwks_url {url!r} must be an http(s) URL")
    tls = parts.scheme == "https"
    cluster: dict[str, Any] = {
        "name": name,
        "type": "LOGICAL_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": "5s",
        "load_assignment": _endpoint(name, parts.hostname, parts.port or (443 if tls else 80)),
    }
    if tls:
        cluster["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {"@type": _TLS, "sni": parts.hostname},
        }
    return cluster


def envoy_bootstrap(
    issuers: Sequence[Mapping[str, Any]], listen_port: int, admin_port: int, serve_port: int
) -> dict[str, Any]:
    """Envoy's static bootstrap: every request needs a valid JWT from one issuer."""
    if not issuers:
        raise ValueError("the Envoy JWT sidecar needs auth.jwt_issuers in the platform config")
    providers: dict[str, Any] = {}
    clusters = [
        {
            "name": "serve",
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": _endpoint("serve", "127.0.0.1", serve_port),
        }
    ]
    for index, issuer in enumerate(issuers):
        cluster = f"jwks-{index}"
        clusters.append(_jwks_cluster(cluster, str(issuer["jwks_url"])))
        providers[f"issuer-{index}"] = {
            "issuer": issuer["issuer"],
            "audiences": [issuer["audience"]],
            "remote_jwks": {
                "http_uri": {"uri": issuer["jwks_url"], "cluster": cluster, "timeout": "5s"},
                "cache_duration": f"{int(issuer.get('jwks_cache_s', 300))}s",
            },
            "clock_skew_seconds": int(issuer.get("leeway_s", 30)),
            "forward": True,  # the gateway verifies again and maps the team claim
            "from_headers": [{"name": "Authorization", "value_prefix": "Bearer "}],
        }
    names = sorted(providers)
    requires: dict[str, Any] = (
        {"provider_name": names[0]}
        if len(names) == 1
        else {"requires_any": {"requirements": [{"provider_name": n} for n in names]}}
    )
    manager = {
        "@type": _HCM + "HttpConnectionManager",
        "stat_prefix": "jwt",
        "stream_idle_timeout": "300s",
        "route_config": {
            "virtual_hosts": [
                {
                    "name": "serve",
                    "domains": ["*"],
                    "routes": [
                        {"match": {"prefix": "/"}, "route": {"cluster": "serve", "timeout": "0s"}}
                    ],
                }
            ]
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.jwt_authn",
                "typed_config": {
                    "@type": _JWT,
                    "providers": providers,
                    "rules": [{"match": {"prefix": "/"}, "requires": requires}],
                },
            },
            {"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER}},
        ],
    }
    return {
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}
        },
        "static_resources": {
            "listeners": [
                {
                    "name": "jwt",
                    "address": {
                        "socket_address": {"address": "0.0.0.0", "port_value": listen_port}
                    },
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": manager,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": clusters,
        },
    }
