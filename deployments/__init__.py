"""Ray Serve deployments: thin shells that wire library code into Serve."""
