"""KubeRay: the raygate RayService on GKE.

``cluster`` (the cluster section), ``render`` (platform Serve config + cluster section ->
ServiceAccount, Envoy ConfigMap/Service, RayService), ``envoy`` (the JWT sidecar's
bootstrap), ``crd_schema`` (validation against the CRD), ``client`` (server-side apply,
status, ``patch_serve_config``) and ``cli`` (``raygate kuberay render|apply|status``).
See docs/deploy-gke.md.
"""

__all__: list[str] = []
