"""The service's HTTP routes, one router per resource; ``service.app`` composes them."""
