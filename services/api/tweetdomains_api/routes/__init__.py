"""One router per resource: classify, operations (health, metrics, model), the page and docs."""
