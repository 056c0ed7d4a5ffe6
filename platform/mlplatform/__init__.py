"""mlplatform: a Kubernetes-native MLOps platform template (embedded and cluster modes)."""

__version__ = "0.1.0"
