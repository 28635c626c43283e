"""A local HTTP server that speaks APS OAuth v2, insights/v1 and tokenflex/v1 over synthetic data."""
