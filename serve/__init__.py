"""raygate's composition root: config, app builder, CLI, state, auth and the HTTP edge."""
