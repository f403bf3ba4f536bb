"""The HTTP edge: OpenAI-compatible routes, admin routes, JSON and SSE encoding."""
