"""HTTP layer: dependencies, the one problem+json error mapping, and one router per resource."""
