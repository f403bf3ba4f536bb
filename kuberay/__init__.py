"""KubeRay: renders a RayService from the platform config (GKE GPU node pools, secrets as
`env:` references fed from Kubernetes Secrets) and applies it through the Kubernetes API.

Arrives with the self-hosted models issue; today `serve/configs/cluster.yaml` is the
`serveConfigV2` a RayService would carry.
"""
