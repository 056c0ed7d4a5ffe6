"""Shadow and canary rollouts: a policy from tenant.yaml evaluated against Prometheus, acting
through a backend (embedded: nginx in front of model servers; cluster: HTTPRoute/InferenceService
patches) and moving MLflow aliases. See docs/rollout.md."""
