"""Identity per tenant, least privilege: who may touch what in the shared services.

- mlflow_auth.py: MLflow's basic-auth app (the auth ini, one user per tenant, a read-only user for
  its predictor, the tenant's experiment and registered model created by the admin at onboarding);
- redis_acl.py: Redis ACL users whose key patterns match one tenant's Feast keys and no other's;
- sql_registry.py: each tenant's own PostgreSQL role owning a schema (its Feast registry, its
  prediction log);
- refusal.py: a service's refusal (HTTP 401/403, Redis NOPERM, PostgreSQL 42501) as AccessDenied,
  naming identity and resource;
- access.py: the services profile onboarding each tenant and acting as its trainer or predictor;
- onboard_cli.py: `mlplatform onboard`, the same onboarding as a cluster's Job runs it, as the admins,
  with the passwords of the tenant's Secret;
- secret_files.py: a cluster pod's identity, read from its mounted Secret into the variables the
  clients read.

docs/security.md describes the model.
"""
