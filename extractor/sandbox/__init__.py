"""A local HTTP server that speaks APS OAuth v2, insights/v1 and tokenflex/v1 over synthetic data."""

CLIENT_ID = "sandbox-client"
CLIENT_SECRET = "sandbox-secret"
PAT = "sandbox-pat"
#: the team admin a 3-legged login signs in as
ADMIN_EMAIL = "admin@acme-design.example"
